"""Shared helpers of the fault-injection suite: servers that can be stopped and restarted on the
same port, a worker running the relay, and the ``lost``/``duplicated`` count of a run.

* :class:`RestartableRedis` — a private Redis-compatible server on a fixed port with AOF
  persistence (``appendfsync always``) in a temp dir, so a restart keeps the queue and the marks;
* :class:`RestartableMongo` — a private SecantusDB on a fixed port with a persistent
  ``--storage-path`` in a temp dir (``--sync-on-commit``), so data survives a restart;
* :func:`fault_worker` — a real ``celery worker`` with the relay (``ORMEVENTS_MONGO_URL``) and
  the counting handler of :mod:`tests.faults.fault_handlers`;
* :func:`count` — ``lost`` (written events never applied) and ``duplicated`` (applied twice);
  :func:`published_twice` — events whose dispatch reached the worker twice without the worker
  requeueing it (the write side's duplicates; a handler that ran, then lost Redis before it could
  record its outcome, runs again after the requeue: that is the worker side's, issue 12's inbox).

Sizes: the short form runs in ``make test``; ``ORMEVENTS_FAULTS=full`` runs the issue's sizes.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ormevents.testing.servers import redis_server_binary
from tests.integration.worker_process import WorkerProcess
from tests.support.servers import free_port, stop, wait_for_port

FULL = os.environ.get("ORMEVENTS_FAULTS", "").lower() == "full"


def size(short: int, full: int) -> int:
    """``full`` with ``ORMEVENTS_FAULTS=full``, else ``short`` (the form ``make test`` runs)."""
    return full if FULL else short


class _Restartable:
    """A server process on one fixed port that can be stopped and started again."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix=f"ormevents-fault-{self.name}-")
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(self.workdir) / "server.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start (again) on the same port and data directory; wait until it listens."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, timeout=60)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: it saves what it must), then wait for the process."""
        if self.process is not None:
            stop(self.process)
            self.process = None

    def restart(self, down_for: float = 0.0) -> float:
        """Stop, stay down ``down_for`` seconds, start; returns how long it was unreachable."""
        started = time.monotonic()
        self.stop()
        time.sleep(down_for)
        self.start()
        return time.monotonic() - started

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class RestartableRedis(_Restartable):
    """Redis with AOF on every write (see module doc); ``url`` stays valid across restarts."""

    name = "redis"

    def command(self) -> list[str]:
        return [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", self.workdir, "--protected-mode", "no"]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class RestartableMongo(_Restartable):
    """SecantusDB with its data on disk (see module doc); ``url`` stays valid across restarts."""

    name = "mongo"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", str(Path(self.workdir) / "data"), "--sync-on-commit", "--log-level", "WARNING"]

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet=secantus&retryWrites=false"


@contextmanager
def running(server: _Restartable) -> Iterator[_Restartable]:
    """``server`` started for the block, then stopped and its data removed."""
    try:
        server.start()
        yield server
    finally:
        server.close()


class Supervised(WorkerProcess):
    """A worker restarted when it exits, as a process supervisor would (``restarts`` counts them)."""

    restarts = 0

    def alive(self) -> bool:
        """Restart the worker if it exited; True if it was running."""
        if self.process is not None and self.process.poll() is None:
            return True
        self.restarts += 1
        self.process = None
        self.start(timeout=60)
        return False


@contextmanager
def fault_worker(queue: str, redis_url: str, mongo_url: str, database: str, *, effects: str = "mongo",
                 effects_redis: str | None = None, concurrency: int = 2,
                 extra_env: dict[str, str] | None = None) -> Iterator[Supervised]:
    """A real worker on ``queue`` running the relay (grace 1 s) and the counting handler; a message
    it took and could not finish comes back after 10 s (:mod:`tests.faults.celery_config`)."""
    env = {"ORMEVENTS_IMPORTS": "tests.faults.fault_handlers", "ORMEVENTS_MONGO_URL": mongo_url,
           "ORMEVENTS_DATABASE": database, "ORMEVENTS_RELAY_GRACE": "1", "ORMEVENTS_CELERY_CONFIG": "tests.faults.celery_config",
           "FAULT_EFFECTS": effects,
           "FAULT_EFFECTS_MONGO": mongo_url, "FAULT_EFFECTS_REDIS": effects_redis or redis_url, **(extra_env or {})}
    worker = Supervised(queue, redis_url, concurrency=concurrency, extra_env=env)
    try:
        yield worker.start(timeout=60)
    finally:
        worker.cleanup()


def whereabouts(ids: list[str], client: Any, queue: str) -> dict[str, list[str]]:
    """Where events that were never handled are: ``unsent`` (no sent mark: the outbox lost them),
    ``queued`` or ``unacked`` (still in Redis), ``dropped`` (handed to the broker and gone from
    it: popped by a worker whose Redis went away before kombu recorded the message as unacked)."""
    if not ids:
        return {}
    marks = client.zmscore(f"{queue}:outbox:sent", ids)
    waiting = b"".join(client.lrange(queue, 0, -1))
    unacked = b"".join(client.hvals("unacked"))
    found: dict[str, list[str]] = {"unsent": [], "queued": [], "unacked": [], "dropped": []}
    for event_id, mark in zip(ids, marks):
        key = ("unsent" if mark is None else "queued" if event_id.encode() in waiting
               else "unacked" if event_id.encode() in unacked else "dropped")
        found[key].append(event_id)
    return {kind: found_ids for kind, found_ids in found.items() if found_ids}


def duplicated_ids(effects: dict[str, int]) -> list[str]:
    """The event ids whose effect was applied more than once."""
    return [event_id for event_id, n in effects.items() if n > 1]


_RECEIVED = re.compile(r"Task ormevents\.dispatch\[([0-9a-f-]{36}):dispatch\] received")
_REQUEUED = re.compile(r"Task ormevents\.dispatch\[([0-9a-f-]{36}):dispatch\] reject requeue=True")
_RESTORED = re.compile(r"put back ormevents\.dispatch\[([0-9a-f-]{36}):dispatch\]")


def published_twice(workers: WorkerProcess | Iterable[WorkerProcess], ids: Iterable[str]) -> list[str]:
    """The events among ``ids`` whose dispatch message reached the workers more than once other
    than by a worker's own requeue or a restore of an unacknowledged message: published twice by
    the writers or the relays (the write side's duplicates; a handler run twice after a requeue is
    the worker side's)."""
    logs = [workers.log()] if isinstance(workers, WorkerProcess) else [worker.log() for worker in workers]
    received = Counter(found for log in logs for found in _RECEIVED.findall(log))
    requeued = Counter(found for log in logs for pattern in (_REQUEUED, _RESTORED) for found in pattern.findall(log))
    return [i for i in ids if received[i] - requeued[i] > 1]


def worker_lines(worker: WorkerProcess, ids: Iterable[str], limit: int = 12) -> str:
    """The worker's log lines naming any of ``ids`` (to tell where a duplicate came from)."""
    wanted = list(ids)
    return "\n".join([line for line in worker.log().splitlines() if any(i in line for i in wanted)][:limit])


@dataclass(frozen=True)
class Outcome:
    """What a scenario counted."""

    written: int
    handled: int
    lost: int
    duplicated: int

    def line(self, scenario: str) -> str:
        return (f"{scenario}: written={self.written} handled={self.handled} "
                f"lost={self.lost} duplicated={self.duplicated}")


def count(written: Iterable[str], effects: dict[str, int]) -> Outcome:
    """Compare the event ids ``written`` with the effect counters (event id -> times applied)."""
    ids = set(written)
    return Outcome(len(ids), sum(1 for i in ids if effects.get(i)), sum(1 for i in ids if not effects.get(i)),
                   sum(1 for n in effects.values() if n > 1))


def mongo_effects(client: Any, database: str, run: str) -> dict[str, int]:
    """The effect counters of ``run`` kept in MongoDB (``FAULT_EFFECTS=mongo``)."""
    prefix = f"{run}:"
    return {row["_id"][len(prefix):]: row["n"] for row in client[database]["fault_effects"].find(
        {"_id": {"$regex": f"^{prefix}"}})}


def redis_effects(client: Any, run: str) -> dict[str, int]:
    """The effect counters of ``run`` kept in Redis (``FAULT_EFFECTS=redis``)."""
    return {k.decode(): int(v) for k, v in client.hgetall(f"faults:effects:{run}").items()}


async def wait_until(check: Any, timeout: float, interval: float = 0.25, worker: Supervised | None = None) -> Any:
    """Poll ``check()`` until it is truthy or ``timeout`` passes (restarting ``worker`` if it died);
    returns its last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        if worker is not None:
            await asyncio.to_thread(worker.alive)
        await asyncio.sleep(interval)
        value = check()
    return value
