"""Bulk and query writes (issue 13) under concurrency and failure: the outbox path (events
recorded with each document's write, exact under concurrent calls), concurrent claims, a page
failing part-way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import RecordingPublisher
from tests.integration.models import Member
from tests.support.broker_queue import queued_events_at

pytestmark = pytest.mark.integration


@pytest.fixture
async def outbox(db: Any, redis_uri: str) -> AsyncIterator[tuple[Any, str]]:
    queue = f"bulk{uuid.uuid4().hex[:8]}:events"
    await ormevents.init(database=db, redis_uri=redis_uri, event_config={"queue_name": queue})
    yield db, queue
    await ormevents.close()
    redis.Redis.from_url(redis_uri).delete(queue)


_queued = queued_events_at


async def test_a_thousand_documents_one_exact_event_each_through_the_outbox(
        outbox: tuple[Any, str], redis_uri: str) -> None:
    db, queue = outbox
    count = 1000
    await Member.insert_many([Member(name=f"m{n}", visits=n) for n in range(count)], events="off")
    result = await Member.update_many({}, {"$inc": {"visits": 1}, "$push": {"tags": "t"}})
    assert (result.matched_count, result.modified_count, result.events) == (count, count, count)
    await ormevents.flush(cleanup=True)
    events = _queued(redis_uri, queue)
    assert len(events) == count and len({e["id"] for e in events}) == count
    for event in events:
        n = int(event["data"]["name"][1:])
        assert event["name"] == "member.updated"
        assert event["changes"] == {"visits": [n, n + 1], "tags": [[], ["t"]]}
    assert await db.members.count_documents({"_oe_pending_at": {"$exists": True}}) == 0


async def _concurrent_update_many() -> None:
    await Member.insert_many([Member(name=f"m{n}") for n in range(60)], events="off")
    calls = [({"name": {"$in": [f"m{n}" for n in range(0, 60, step)]}}, {"$inc": {"visits": step}})
             for step in (1, 2, 3)] * 2
    results = await asyncio.gather(*(Member.update_many(f, u) for f, u in calls))
    assert [r.modified_count for r in results] == [60, 30, 20] * 2


async def _check_chains(events: list[dict[str, Any]]) -> None:
    chains: dict[str, list[tuple[int, int]]] = {}
    for event in events:
        old, new = event["changes"]["visits"]
        chains.setdefault(event["data"]["name"], []).append((old, new))
    for member in await Member.find():
        # each write's old is the previous write's new: no value reported replaced twice or skipped
        steps = sorted(chains[member.name])
        assert [old for old, _ in steps] == [0] + [new for _, new in steps[:-1]], (member.name, steps)
        assert steps[-1][1] == member.visits == 2 * sum(s for s in (1, 2, 3) if int(member.name[1:]) % s == 0)


async def test_concurrent_update_many_through_the_outbox_report_only_replaced_values(
        outbox: tuple[Any, str], redis_uri: str) -> None:
    await _concurrent_update_many()
    await ormevents.flush()
    await _check_chains(_queued(redis_uri, outbox[1]))


async def test_concurrent_update_many_inline_report_only_replaced_values(rec: RecordingPublisher) -> None:
    await _concurrent_update_many()
    await _check_chains([e.to_dict() for e in rec.events])


@pytest.mark.parametrize("events", ["per_document", "off"])
async def test_concurrent_claims_each_get_a_job_while_jobs_remain(rec: RecordingPublisher, db: Any,
                                                                  events: str) -> None:
    """Review 13 #2: a claim whose first match was taken by another claim goes on to the next match."""
    for _ in range(4):
        await db.members.delete_many({})
        await Member.insert_many([Member(name="j1"), Member(name="j2")], events="off")
        claims = await asyncio.gather(*(Member.find_one_and_update({"status": "new"}, {"$set": {"status": "run"}},
                                                                   return_document="after", events=events)
                                        for _ in range(2)))
        assert sorted(c.name for c in claims if c is not None) == ["j1", "j2"]
        await db.members.update_many({}, {"$set": {"status": "new"}})
        results = await asyncio.gather(*(Member.update_one({"status": "new"}, {"$set": {"status": "run"}},
                                                           events=mode) for mode in ("bulk", events)))
        assert [r.modified_count for r in results] == [1, 1]
        assert await db.members.count_documents({"status": "new"}) == 0


@pytest.mark.parametrize("path", ["inline", "outbox"])
async def test_a_page_failing_part_way_hands_over_the_events_of_what_applied(
        db: Any, redis_uri: str, path: str) -> None:
    """Review 13 #3: a duplicate key on one document; the one that was written still has its event."""
    from pymongo.errors import DuplicateKeyError

    rec = RecordingPublisher()
    queue = f"bulk{uuid.uuid4().hex[:8]}:events"
    await (ormevents.init(database=db, publisher=rec) if path == "inline" else
           ormevents.init(database=db, redis_uri=redis_uri, event_config={"queue_name": queue}))
    try:
        await db.members.create_index("name", unique=True)
        await Member.insert_many([Member(name=n) for n in "abc"], events="off")
        with pytest.raises(DuplicateKeyError):
            await Member.update_many({}, {"$set": {"name": "same"}})
        await ormevents.flush()
        events = [e.to_dict() for e in rec.events] if path == "inline" else _queued(redis_uri, queue)
        written = [d["name"] async for d in db.members.find()]
        assert written.count("same") == 1 and [e["changes"]["name"][1] for e in events] == ["same"]
    finally:
        await ormevents.close()
        redis.Redis.from_url(redis_uri).delete(queue)
