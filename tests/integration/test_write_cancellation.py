"""Cancelled saves (issue 10, item 2): a cancelled save either left no change in the database or
its event was handed to the broker. Real SecantusDB (both drivers) and a real Redis broker."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import EventModel
from ormevents.hooks import before_update
from tests.support.broker_queue import queued_events

pytestmark = pytest.mark.integration


class Cancellable(EventModel):
    n: int = 0

    @before_update
    async def checked_elsewhere(self) -> None:
        await asyncio.sleep(0.0005)  # a before-hook that awaits: a cancellation here must leave no change


@pytest.fixture
def rdb(redis_uri: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_uri)
    yield client
    client.close()


broker_events = queued_events


async def _cancel_at_random(doc: Cancellable, rng: random.Random, typical: float) -> bool:
    """Save ``doc``, cancelled after a random part of a typical save; True if it was cancelled."""
    if rng.random() < 0.5:
        try:
            await asyncio.wait_for(doc.save(), timeout=rng.uniform(0, typical * 1.5))
        except TimeoutError:
            return True
        return False
    task = asyncio.ensure_future(doc.save())
    deadline = time.perf_counter() + rng.uniform(0, typical * 1.5)
    while time.perf_counter() < deadline and not task.done():
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def test_a_cancelled_save_never_loses_its_event(database: Any, redis_uri: str, rdb: redis.Redis) -> None:
    queue = f"cancel{uuid.uuid4().hex[:8]}:events"
    await ormevents.init(database=database, redis_uri=redis_uri, event_config={"queue_name": queue})
    try:
        docs = [await Cancellable.create() for _ in range(100)]
        durations = []
        for doc in docs[:10]:  # how long a save takes here, to spread the cancellations over it
            doc.n = -1
            started = time.perf_counter()
            await doc.save()
            durations.append(time.perf_counter() - started)
            doc.n = 0
            await doc.save()
        typical = statistics.median(durations)
        rng = random.Random(10)
        cancelled = []
        for doc in docs:
            doc.n = 1
            if await _cancel_at_random(doc, rng, typical):
                cancelled.append(doc)
        await ormevents.flush()  # the hand-off to the broker follows the write in the background
        stored = {d["_id"]: d["n"] async for d in database["cancellables"].find({})}
        updated = {}
        for wire in broker_events(rdb, queue):
            if wire["name"] == "cancellable.updated" and wire["changes"].get("n") == [0, 1]:
                updated[wire["object_id"]["$oid"]] = wire
        changed = [doc for doc in cancelled if stored[doc.id] == 1]
        lost = [doc for doc in changed if str(doc.id) not in updated]
        phantom = [i for i, n in stored.items() if n != 1 and str(i) in updated]
        unaware = [doc for doc in cancelled if (stored[doc.id] == 1) != (doc.changes == {})]
        print(f"{len(cancelled)} of {len(docs)} saves cancelled; {len(changed)} of them changed the document; "
              f"events lost: {len(lost)} of {len(changed)}")
        assert cancelled, "no save was cancelled: the test did not exercise anything"
        assert not lost, (f"events lost: {len(lost)} of {len(changed)} cancelled saves that changed the document "
                          f"({len(cancelled)} of {len(docs)} saves cancelled)")
        assert not phantom, f"{len(phantom)} events for documents that did not change"
        assert not unaware, (f"{len(unaware)} of {len(cancelled)} cancelled instances disagree with the database "
                             "about whether their write went through")
        finished = {id(doc) for doc in docs} - {id(doc) for doc in cancelled}
        assert all(stored[doc.id] == 1 for doc in docs if id(doc) in finished)
    finally:
        await ormevents.close()
