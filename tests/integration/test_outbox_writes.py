"""The write side of the outbox (issue 12) on a real server: records written with the data and
never seen by the model, compare-and-set unaffected by them, oversized events and documents
refused with typed errors before anything is written, an unreachable MongoDB raised as
``DatabaseUnavailableError`` with the driver's error chained, delayed events through the Redis
schedule, and passwords kept out of logs and the command line."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import (
    DatabaseUnavailableError,
    DocumentTooLargeError,
    EventModel,
    EventTooLargeError,
)
from ormevents.jobs.keys import Keys
from ormevents.jobs.status import read_status
from tests.integration.worker_process import ROOT
from tests.support.servers import free_port
from tests.support.broker_queue import queued_events_at

pytestmark = pytest.mark.integration


class Profile(EventModel):
    _collection = "profiles"
    name: str
    bio: str = ""
    tags: list[str] = []


@pytest.fixture
async def outbox(database: Any, redis_uri: str) -> AsyncIterator[tuple[Any, str]]:
    queue = f"ow{uuid.uuid4().hex[:8]}:events"
    await ormevents.init(database=database, redis_uri=redis_uri,
                         event_config={"queue_name": queue, "max_event_bytes": 64 * 1024})
    yield database, queue
    await ormevents.close()


queued = queued_events_at


async def test_records_are_written_with_the_data_and_never_read_back(outbox: tuple[Any, str]) -> None:
    database, _ = outbox
    profile = await Profile.create(name="ann", tags=["a"])
    stored = await database["profiles"].find_one({"_id": profile.id})
    assert [e["n"] for e in stored["_oe_outbox"].values()] == ["profile.created"] and stored["_oe_pending_at"], stored
    loaded = await Profile.get(profile.id)
    assert loaded is not None and loaded._stored is not None and "_oe_outbox" not in loaded._stored
    assert [p.name for p in await Profile.find({"name": "ann"})] == ["ann"]
    raw = await database["profiles"].find_one({"_id": profile.id}, {"_oe_outbox": 1})
    assert raw is not None  # the data is there; the model just never sees it
    other = await Profile.get(profile.id)
    assert other is not None
    profile.tags = ["a", "b"]
    await profile.save()  # a second pending record is pushed; the compare-and-set still matches
    other.bio = "hi"
    await other.save()  # a different path: both succeed, whatever the outbox holds
    stale = await Profile.get(profile.id)
    assert stale is not None
    profile.tags = ["a", "b", "c"]
    await profile.save()
    stale.tags = ["x"]
    with pytest.raises(ormevents.ConflictError) as conflict:
        await stale.save()
    assert conflict.value.paths == ("tags",), conflict.value.paths
    await ormevents.flush(cleanup=True)
    cleaned = await database["profiles"].find_one({"_id": profile.id})
    assert "_oe_outbox" not in cleaned and "_oe_pending_at" not in cleaned, cleaned
    assert cleaned["tags"] == ["a", "b", "c"] and cleaned["bio"] == "hi"


async def test_an_oversized_event_is_refused_before_anything_is_written(outbox: tuple[Any, str], redis_uri: str) -> None:
    database, queue = outbox
    with pytest.raises(EventTooLargeError) as caught:
        await Profile.create(name="big", bio="x" * 100_000)
    assert caught.value.fields[0][0] in ("data.bio", "changes.bio") and caught.value.limit == 64 * 1024
    assert await database["profiles"].count_documents({}) == 0, "an oversized event's write went through"
    profile = await Profile.create(name="small")
    with pytest.raises(EventTooLargeError):
        await profile.update(bio="y" * 100_000)
    stored = await database["profiles"].find_one({"_id": profile.id})
    assert stored["bio"] == "" and profile.bio == "", "the refused update changed the document or the instance"
    await ormevents.flush()
    assert [e["name"] for e in queued(redis_uri, queue)] == ["profile.created"]


async def test_a_document_over_16_mib_raises_a_typed_error_naming_the_field(database: Any, redis_uri: str) -> None:
    await ormevents.init(database=database, redis_uri=redis_uri,
                         event_config={"queue_name": "t:big", "max_event_bytes": 64 << 20})
    try:
        with pytest.raises(DocumentTooLargeError) as caught:
            await Profile.create(name="huge", bio="z" * (20 << 20))
        error = caught.value
        print(f"20 MB field: {type(error).__name__}: {str(error)[:160]}; cause {type(error.__cause__).__name__}")
        assert error.fields[0][0] == "bio" and "_oe_outbox" not in str(error), error
        assert error.__cause__ is not None and "DocumentTooLarge" in type(error.__cause__).__name__
        assert await database["profiles"].count_documents({}) == 0
    finally:
        await ormevents.close()


async def test_an_unreachable_mongodb_raises_database_unavailable_with_the_cause() -> None:
    dead = f"mongodb://app:s3cret@127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    await ormevents.init(mongo_uri=dead, database="nowhere", redis_uri=f"redis://127.0.0.1:{free_port()}/0",
                         event_config={"redis_check": "skip"})
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError) as caught:
            await Profile.create(name="lost")
        took = time.monotonic() - started
    finally:
        await ormevents.close()
    error = caught.value
    print(f"dead MongoDB: {type(error).__name__} after {took:.2f} s, cause {type(error.__cause__).__name__}")
    assert type(error.__cause__).__name__ in ("ServerSelectionTimeoutError", "AutoReconnect"), repr(error.__cause__)
    assert "s3cret" not in str(error) and "reload" in str(error)


async def test_a_delayed_custom_event_goes_through_the_redis_schedule(outbox: tuple[Any, str], redis_uri: str) -> None:
    database, queue = outbox
    profile = await Profile.create(name="later")
    event = await profile.emit("reminded", data={"n": 1}, delay=60)
    await ormevents.flush()
    client = redis.Redis.from_url(redis_uri)
    due = client.zscore(f"{queue}:schedule", f"event:{event.id}")
    assert due is not None and 55 < due - time.time() <= 60, due
    status = read_status(client, Keys(queue), str(event.id))   # read from the schedule entry: no record of its own
    assert status is not None and status.state == "scheduled" and status.event == event, status
    assert [e["name"] for e in queued(redis_uri, queue)] == ["profile.created"], "the delayed event was sent at once"
    assert await ormevents.event_bus.cancel(event.id), "a delayed event recorded by the outbox can be cancelled"
    row = await database["_oe_events"].find_one({"_id": str(event.id)})
    assert row is not None and row["due"] == pytest.approx(due)


async def test_passwords_stay_out_of_logs_and_the_command_line(database: Any, caplog: pytest.LogCaptureFixture) -> None:
    secret_url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    caplog.set_level(logging.DEBUG, logger="ormevents")
    await ormevents.init(database=database, redis_uri=secret_url,
                         event_config={"queue_name": "t:secret", "publish_retry": {"max_retries": 0, "timeout": 0.3},
                                       "redis_check": "warn"})
    try:
        await Profile.create(name="ann")
        await ormevents.flush()
        await asyncio.sleep(0)
    finally:
        await ormevents.close()
    assert "unreachable" in caplog.text and "hunter2" not in caplog.text, caplog.text[-2000:]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        [sys.executable, "-m", "ormevents", "--redis-url", secret_url, "stats"],
        [sys.executable, "-m", "ormevents", "--redis-url", secret_url, "worker", "--print"],
        [sys.executable, "-m", "ormevents", "--redis-url", secret_url, "outbox", "status",
         "--mongo-url", f"mongodb://app:hunter2@127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300", "--database", "x"],
        [sys.executable, "-m", "ormevents", "--redis-url", "redis://:hunter2@[bad", "stats"],
    ]
    for argv in runs:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        shown = run.stdout + run.stderr
        assert "hunter2" not in shown and shown.strip(), f"{argv[3:]} printed a password or nothing: {shown[-800:]}"


async def test_a_document_written_again_and_again_carries_only_the_entries_in_flight(
        outbox: tuple[Any, str], redis_uri: str) -> None:
    database, queue = outbox
    profile = await Profile.create(name="hot")
    sizes = []
    for i in range(60):
        await profile.update(bio=f"v{i}")
        await ormevents.flush()  # the hand-off of this write is done (on a loaded machine it can lag behind)
        stored = await database["profiles"].find_one({"_id": profile.id}, {"_oe_outbox": 1})
        sizes.append(len(stored.get("_oe_outbox") or {}))
    await ormevents.flush(cleanup=True)
    history = len(await Profile.history(profile.id))
    names = [e["name"] for e in queued(redis_uri, queue)]
    print(f"entries carried by a document written 60 times: max {max(sizes)}, last {sizes[-1]}; events in its history {history}")
    assert max(sizes) <= 2, f"the document accumulated {max(sizes)} entries: sent ones are not dropped by later writes"
    assert names.count("profile.updated") == 60 and history == 61, (names.count("profile.updated"), history)
    cleaned = await database["profiles"].find_one({"_id": profile.id})
    assert "_oe_pending_at" not in cleaned and not cleaned.get("_oe_outbox"), cleaned


async def test_while_the_workers_are_behind_one_writer_s_saves_share_messages(database: Any, redis_uri: str) -> None:
    """No worker drains this queue: once a push finds 2 messages or more waiting, the next
    hand-offs linger (here up to 1 s) for a full message (``batch_events`` 4), so 8 sequential
    saves travel in 2 messages, in order. Once the queue is drained, a save's event goes at once."""
    queue = f"ol{uuid.uuid4().hex[:8]}:events"
    await ormevents.init(database=database, redis_uri=redis_uri,
                         event_config={"queue_name": queue, "outbox": {"linger": 1.0, "batch_events": 4}})
    client = redis.Redis.from_url(redis_uri)
    try:
        for i in range(3):  # flushed one by one: the last push found 2 messages waiting
            await Profile.create(name=f"a{i}")
            await ormevents.flush()
        assert client.llen(queue) == 3
        for i in range(8):
            await Profile.create(name=f"b{i}")
        await ormevents.flush()
        assert client.llen(queue) == 5, "8 saves while behind: 2 messages of 4 events"
        assert [e["data"]["name"] for e in queued(redis_uri, queue)] == [*(f"a{i}" for i in range(3)),
                                                                          *(f"b{i}" for i in range(8))]
        client.delete(queue)  # the workers caught up
        await Profile.create(name="c0")
        await ormevents.flush()
        await Profile.create(name="c1")  # not flushed: no lingering, it is pushed right after the save
        deadline = time.monotonic() + 0.5
        while client.llen(queue) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert client.llen(queue) == 2, "a hand-off lingered though the queue was short"
    finally:
        await ormevents.close()
        client.delete(queue)
        client.close()
