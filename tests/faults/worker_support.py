"""The worker fault scenarios' handlers (their workers import this module) and the test-side helpers.

Handlers (``ORMEVENTS_IMPORTS=tests.faults.worker_support``; the workers also get
``ORMEVENTS_MONGO_URL``/``ORMEVENTS_DATABASE``). Counters live in the test's private Redis
under the queue name:

* ``fault.effect`` (async, with a session: the MongoDB inbox) inserts ``effects/<event id>`` in
  its transaction; a second insert of the same id is a *collision* (an effect applied twice),
  counted in ``<queue>:fault:collisions``;
* ``fault.delayed`` (sync) counts its starts per event in ``<queue>:fault:runs`` and sleeps
  ``data["sleep"]`` seconds (longer than the visibility timeout, for some events);
* ``fault.poison`` counts its starts and kills its own process (``os._exit``), every time;
* ``fault.flow`` counts its starts: the events that must keep flowing meanwhile.

Test side: :func:`size` picks the short form (``make test``) or the full one
(``ORMEVENTS_FAULTS=full``); :class:`Scenario` holds a queue, its workers, a publisher and the
counters, and :func:`report` prints the ``lost=N duplicated=N`` line of a scenario.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from ormevents import Event
from ormevents.handlers import RetryPolicy, event_handler

QUEUE = os.environ.get("ORMEVENTS_QUEUE", "")
DATABASE = os.environ.get("ORMEVENTS_DATABASE", "")
FAST_RETRY = RetryPolicy(max_retries=8, interval_start=0.05, interval_step=0.05, interval_max=0.2)
POISON_RETRY = RetryPolicy(max_retries=2, interval_start=0.05, interval_step=0, interval_max=0.05)
_clients: dict[int, redis.Redis] = {}


def _redis() -> redis.Redis:
    """This worker process's Redis client (one per process: never shared across fork)."""
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["ORMEVENTS_REDIS_URL"])
    return client


def _count_start(event: Event) -> None:
    _redis().hincrby(f"{QUEUE}:fault:runs", str(event.id), 1)


@event_handler("fault.effect", name="fault.effect", retry=FAST_RETRY)
async def effect(event: Event, session: Any) -> None:
    from pymongo.errors import DuplicateKeyError

    try:
        await session.client[DATABASE]["effects"].insert_one({"_id": str(event.id), "n": event.data["n"]},
                                                             session=session)
    except DuplicateKeyError:
        _redis().incr(f"{QUEUE}:fault:collisions")
        raise


@event_handler("fault.delayed", name="fault.delayed", retry=FAST_RETRY)
def delayed(event: Event) -> None:
    _count_start(event)
    time.sleep(float(event.data.get("sleep", 0)))


@event_handler("fault.poison", name="fault.poison", retry=POISON_RETRY)
def poison(event: Event) -> None:
    _count_start(event)
    os._exit(1)


@event_handler("fault.flow", name="fault.flow", retry=FAST_RETRY)
def flow(event: Event) -> None:
    _count_start(event)


# ----- test side ----------------------------------------------------------------------------

def size(short: int, full: int) -> int:
    """``full`` when ``ORMEVENTS_FAULTS=full``, else ``short`` (the form ``make test`` runs)."""
    return full if os.environ.get("ORMEVENTS_FAULTS") == "full" else short


def report(scenario: str, lost: int, duplicated: int, **figures: Any) -> str:
    """Print and return the scenario's figures line (``lost=N duplicated=N`` first)."""
    extra = " ".join(f"{key}={value}" for key, value in figures.items())
    line = f"scenario {scenario}: lost={lost} duplicated={duplicated} {extra}".rstrip()
    print(f"\n{line}", flush=True)
    return line


class Scenario:
    """One queue with its workers, a publisher and the handlers' counters (see module doc)."""

    def __init__(self, redis_uri: str, mongo_uri: str, **env: str) -> None:
        from tests.integration.worker_process import WorkerProcess

        self.queue = f"f{uuid.uuid4().hex[:8]}:events"
        self.database = f"faults_{uuid.uuid4().hex[:10]}"
        self.redis_uri = redis_uri
        self.env = {"ORMEVENTS_IMPORTS": __name__, "ORMEVENTS_MONGO_URL": mongo_uri,
                    "ORMEVENTS_DATABASE": self.database, **env}
        self.new_worker: Callable[[], Any] = lambda: WorkerProcess(self.queue, redis_uri, extra_env=self.env)
        self.workers: list[Any] = []
        self.rdb = redis.Redis.from_url(redis_uri, decode_responses=True)
        self._publisher: Any = None

    async def start(self, count: int = 1) -> None:
        """Start ``count`` more workers (in parallel)."""
        fresh = [self.new_worker() for _ in range(count)]
        await asyncio.gather(*(asyncio.to_thread(worker.start) for worker in fresh))
        self.workers += fresh

    async def kill(self, worker: Any) -> None:
        """SIGKILL the worker and its pool processes at once (an OOM kill of the whole container)."""
        os.killpg(worker.main_pid(), signal.SIGKILL)
        await asyncio.to_thread(worker.process.wait, 10)

    async def restart(self, worker: Any) -> None:
        """Stop the worker warmly (its running handlers finish) and start it again."""
        await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(worker.start)

    async def publish(self, events: list[Event], delays: list[float] | None = None, pace: int = 50) -> None:
        """Publish ``events`` (each after its delay, if given), yielding every ``pace`` events."""
        from ormevents.delivery.celery.config import DeliverySettings
        from ormevents.delivery.celery.publisher import CeleryPublisher

        if self._publisher is None:
            self._publisher = CeleryPublisher(DeliverySettings(redis_url=self.redis_uri, queue_name=self.queue))
        for index, event in enumerate(events):
            await self._publisher.publish(event, delay=delays[index] if delays else None)
            if index % pace == pace - 1:
                await asyncio.sleep(0.01)

    def runs(self) -> dict[str, int]:
        """Event id -> how many runs of its handler started."""
        return {key: int(value) for key, value in self.rdb.hgetall(f"{self.queue}:fault:runs").items()}

    def completed(self, events: list[Event]) -> int:
        """How many of ``events`` had their handler complete (a result recorded)."""
        return sum(self.rdb.exists(f"{self.queue}:done:{event.id}") for event in events)

    def collisions(self) -> int:
        """How many times an effect was about to be applied a second time."""
        return int(self.rdb.get(f"{self.queue}:fault:collisions") or 0)

    def stats(self) -> dict[str, int]:
        """The queue's counters (``busy``: deliveries that waited for a run's lease; ``duplicates``:
        deliveries skipped because their run had ended or their handler had completed)."""
        return {key: int(value) for key, value in self.rdb.hgetall(f"{self.queue}:stats").items()}

    def logged(self, text: str) -> int:
        """How many times the workers logged ``text``."""
        return sum(worker.log().count(text) for worker in self.workers)

    def failed_jobs(self) -> dict[str, Any]:
        """Failed job id -> its record (JSON text)."""
        return dict(self.rdb.hgetall(f"{self.queue}:failed:jobs"))

    def idle(self) -> bool:
        """Nothing waits in the queue or the schedule (retries, rechecks, delayed events)."""
        return not (self.rdb.llen(self.queue) or self.rdb.zcard(f"{self.queue}:schedule")
                    or self.rdb.zcard(f"{self.queue}:schedule:inflight"))

    def describe(self) -> str:
        """Where things stand: queue, schedule, counters, failed jobs, and the end of the workers' logs."""
        stats = self.rdb.hgetall(f"{self.queue}:stats")
        logs = "\n".join(worker.log()[-3000:] for worker in self.workers)
        return (f"queue={self.rdb.llen(self.queue)} schedule={self.rdb.zcard(f'{self.queue}:schedule')} "
                f"inflight={self.rdb.zcard(f'{self.queue}:schedule:inflight')} stats={stats} "
                f"failed={len(self.failed_jobs())} runs={len(self.runs())} unacked={self.rdb.hlen('unacked')}\n{logs}")

    async def until(self, check: Callable[[], Awaitable[bool] | bool], timeout: float) -> float:
        """Wait until ``check()`` is true; returns the seconds it took (raises after ``timeout``)."""
        began = time.monotonic()
        while True:
            value = check()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise AssertionError(f"not reached within {timeout:.0f} s: {check.__name__}; {self.describe()}")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """Stop every worker, close the publisher and drop this scenario's Redis keys."""
        await asyncio.gather(*(asyncio.to_thread(worker.cleanup) for worker in self.workers))
        if self._publisher is not None:
            await self._publisher.close()
        self.rdb.delete(*(self.rdb.keys(f"{self.queue}*") or [self.queue]))
        self.rdb.close()
