"""Start and stop a real ``celery -A ormevents.worker worker`` subprocess for the delivery tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One prefork worker of Celery app ``app`` for ``queue`` (consuming ``consume``, default
    ``[queue]``; ``[]``: the app's own choice); its log goes to a temp file (see :meth:`log`)."""

    def __init__(self, queue: str, redis_url: str, *, broker_url: str | None = None,
                 concurrency: int = 2, extra_env: dict[str, str] | None = None,
                 consume: list[str] | None = None, app: str = "ormevents.worker") -> None:
        self.queue = queue
        self.app = app
        self.consume = [queue] if consume is None else consume
        self.env = {
            **os.environ,
            "ORMEVENTS_REDIS_URL": redis_url,
            "ORMEVENTS_QUEUE": queue,
            "ORMEVENTS_IMPORTS": "tests.integration.delivery_handlers",
            "PYTHONPATH": str(ROOT),
            **({"ORMEVENTS_BROKER_URL": broker_url} if broker_url else {}),
            **(extra_env or {}),
        }
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="ormevents-worker-", suffix=".log")[1])

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        """Start the worker and wait until it reports ready."""
        offset = self.log_path.stat().st_size
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", self.app, "worker", "--pool=prefork",
             "-c", str(self.concurrency), *(["-Q", ",".join(self.consume)] if self.consume else []), "-n", f"w{uuid.uuid4().hex[:8]}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")[offset:]
            if "schedule poller started" in text and " ready." in text:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{text[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"worker not ready within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL the process group if it hangs."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this helper started: worker + pool children
            process.wait()

    def log(self) -> str:
        """Everything the worker logged so far."""
        return self.log_path.read_text(errors="replace")

    def main_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cleanup(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


@contextmanager
def running(process: WorkerProcess) -> Iterator[WorkerProcess]:
    """``process`` started for the block, then stopped and its log removed (for fixtures)."""
    try:
        yield process.start()
    finally:
        process.cleanup()
