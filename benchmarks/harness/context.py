"""The run context every scenario receives: servers, clients, workers, sizes and helpers.

:class:`Bench` starts the private servers once per run; the two worker processes (ormevents'
and the raw-Celery baseline's) start on the first scenario that asks for them, together, and
stay up until the end. Scenarios that time the publishing side alone send to queues no worker
consumes (:data:`IDLE_QUEUE`, :data:`benchmarks.raw_celery.IDLE_QUEUE`).

Example::

    async with Bench(quick=True) as bench:
        async with bench.ormevents():               # init(redis_uri=...) on the worker's queue
            ...
        await bench.wait_count(run, expected=100)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import redis
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

import ormevents
from benchmarks import raw_celery, tasks_common

from .servers import MONGO_ENV, mongo_server, redis_server
from .sizes import Sizes
from .workers import CeleryWorker

QUEUE = "bench:events"
"""The ormevents queue the benchmark worker consumes."""
IDLE_QUEUE = "bench:idle"
"""An ormevents queue no worker consumes: publishing-side timings."""


class Bench:
    """Servers, clients and workers of one run (see module doc)."""

    def __init__(self, quick: bool = False) -> None:
        self.quick = quick
        self.sizes = Sizes.quick() if quick else Sizes.full()
        self._stack = ExitStack()
        self._mongo = ExitStack()
        self._workers: tuple[CeleryWorker, CeleryWorker] | None = None
        self.mongo_uri = self.redis_uri = ""
        self.client: Any = None
        self.db: Any = None
        self.redis: redis.Redis = None  # type: ignore[assignment]  # set in __aenter__

    async def __aenter__(self) -> Bench:
        self.redis_uri = self._stack.enter_context(redis_server())
        await self._start_mongo()
        self.redis = redis.Redis.from_url(self.redis_uri)
        raw_celery.configure(self.redis_uri)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await ormevents.close()
        if self._workers is not None:
            for worker in self._workers:
                await asyncio.to_thread(worker.stop)
        raw_celery.app.close()
        try:
            await self.client.drop_database("ormevents_bench")
        except PyMongoError as error:  # the server went away: keep the figures (a private in-memory server
            print(f"could not drop the benchmark database: {error!r}", file=sys.stderr)  # leaves nothing)
        await self.client.close()
        self._mongo.close()
        self.redis.close()
        self._stack.close()

    async def _start_mongo(self) -> None:
        self.mongo_uri = self._mongo.enter_context(mongo_server())
        self.client = AsyncMongoClient(self.mongo_uri, tz_aware=True, uuidRepresentation="standard")
        self.db = self.client["ormevents_bench"]
        await self.client.drop_database("ormevents_bench")

    async def fresh_mongo(self) -> None:
        """A new private SecantusDB for the next scenario (an external MongoDB: its database dropped).

        After the earlier scenarios' writes (~1 GB), SecantusDB's inserts stalled for minutes
        in its storage engine, whatever its cache size: scenarios that fill a collection
        (``FRESH_MONGO = True``) start on a fresh server, as a separate ``--only`` run would.
        """
        await ormevents.close()
        await self.client.drop_database("ormevents_bench")
        if self.mongo_uri == os.environ.get(MONGO_ENV):
            return
        await self.client.close()
        self._mongo.close()
        self._mongo = ExitStack()
        await self._start_mongo()

    @property
    def raw(self) -> Any:
        """The raw-Celery baseline app (publishing side)."""
        return raw_celery.app

    async def workers(self) -> tuple[CeleryWorker, CeleryWorker]:
        """The (ormevents, raw Celery) workers, started together on first use."""
        if self._workers is None:
            pair = (CeleryWorker.ormevents(self.redis_uri, QUEUE), CeleryWorker.raw(self.redis_uri, raw_celery.QUEUE))
            for worker in pair:
                worker.launch()
            for worker in pair:
                await asyncio.to_thread(worker.wait_ready)
            self._workers = pair
        return self._workers

    @asynccontextmanager
    async def ormevents(self, queue: str = QUEUE, *, publisher: Any = None, **config: Any) -> AsyncIterator[Any]:
        """``ormevents.init()`` on the run's database and Redis (or with ``publisher``); closed after.

        On :data:`IDLE_QUEUE` the outbox never lingers (``linger=0``): that queue only grows, which
        would read as workers falling behind and batch the hand-offs; publish-only scenarios
        measure the hand-off of each write as when the workers keep up."""
        if queue == IDLE_QUEUE:
            config = {"outbox": {"linger": 0.0}, **config}
        event_config = {"queue_name": queue, **config}
        if publisher is not None:
            runtime = await ormevents.init(database=self.db, publisher=publisher, event_config=event_config)
        else:
            runtime = await ormevents.init(database=self.db, redis_uri=self.redis_uri, event_config=event_config)
        try:
            yield runtime
        finally:
            await ormevents.close()

    @staticmethod
    def run_id(prefix: str) -> str:
        """A fresh name for one measured batch (its counter key, its documents)."""
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    async def wait_count(self, run: str, expected: int, timeout: float = 600.0, poll: float = 0.005) -> float:
        """Wait until ``expected`` handler runs/tasks of ``run`` were counted; returns ``perf_counter()`` then."""
        key = tasks_common.count_key(run)
        deadline = time.monotonic() + timeout
        while True:
            done = int(self.redis.get(key) or 0)
            if done >= expected:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{run}: only {done} of {expected} runs counted within {timeout:.0f} s")
            await asyncio.sleep(poll)

    def drop_queue(self, name: str) -> None:
        """Forget the messages waiting in broker queue ``name`` (publish-only scenarios)."""
        self.redis.delete(name)
