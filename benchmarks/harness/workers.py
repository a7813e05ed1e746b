"""Real ``celery worker`` subprocesses: ormevents' worker and the raw-Celery baseline's.

Both run with identical flags: ``--pool=prefork -c 2 --without-gossip --without-mingle
--without-heartbeat``, prefetch 1 and late acks (from their apps' settings). Each is started
in a new session so it can be stopped (and, if it hangs, killed) as one process group.

Example::

    worker = CeleryWorker.ormevents(redis_uri, queue="bench:events").start()
    worker.rss_bytes()        # main process + pool children
    worker.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 2


class CeleryWorker:
    """One ``celery -A <app> worker`` process consuming ``queue``; logs to a temp file."""

    def __init__(self, app: str, queue: str, env: dict[str, str], ready_marks: tuple[str, ...]) -> None:
        self.app, self.queue, self.ready_marks = app, queue, ready_marks
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"bench-{app.rsplit('.', 1)[-1]}-", suffix=".log")[1])

    @classmethod
    def ormevents(cls, redis_uri: str, queue: str) -> CeleryWorker:
        """``celery -A ormevents.worker worker`` with the benchmark handlers imported."""
        env = {"ORMEVENTS_REDIS_URL": redis_uri, "ORMEVENTS_QUEUE": queue, "ORMEVENTS_IMPORTS": "benchmarks.handlers"}
        return cls("ormevents.worker", queue, env, ("schedule poller started", " ready."))

    @classmethod
    def raw(cls, redis_uri: str, queue: str) -> CeleryWorker:
        """``celery -A benchmarks.raw_celery worker``: the baseline."""
        return cls("benchmarks.raw_celery", queue, {"BENCH_REDIS_URL": redis_uri}, (" ready.",))

    def launch(self) -> CeleryWorker:
        """Start the process without waiting (see :meth:`wait_ready`)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", self.app, "worker", "--pool=prefork", "-c", str(CONCURRENCY),
                 "-Q", self.queue, "-n", f"{self.app}.{os.getpid()}@%h", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-l", "info"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60.0) -> CeleryWorker:
        """Wait until the log says the worker is ready; raise with the log tail if it died."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if all(mark in text for mark in self.ready_marks):
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} worker exited with {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.app} worker not ready within {timeout}s:\n{self.log()[-3000:]}")

    def start(self) -> CeleryWorker:
        """:meth:`launch` and :meth:`wait_ready`."""
        return self.launch().wait_ready()

    def pids(self) -> list[int]:
        """The main process and its pool children."""
        if self.process is None:
            return []
        main = self.process.pid
        try:
            children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        except OSError:
            children = []
        return [main, *map(int, children)]

    def rss_bytes(self) -> int:
        """Resident memory of the main process plus its pool children, in bytes."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def log(self) -> str:
        """Everything the worker logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Warm shutdown (SIGTERM); kill the process group if it is not gone after ``timeout``."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group this helper started
                process.wait()
        self.log_path.unlink(missing_ok=True)
