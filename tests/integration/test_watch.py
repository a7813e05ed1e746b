"""The change-stream watcher (issue 13) on SecantusDB: writes made with a raw driver client become
events with diffs, ormevents' own writes are not emitted twice, a restart resumes after the last
change handed over (no loss, no duplicate), one leader at a time, and a lost history is loud."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import ChangeStreamHistoryLostError, EventModel, watch
from ormevents.model import watcher
from tests.integration.worker_process import ROOT
from tests.support.broker_queue import queued_events_at

pytestmark = pytest.mark.integration


class Watched(EventModel):
    _collection = "watched"
    name: str
    status: str = "new"
    visits: int = 0
    tags: list[str] = []


@pytest.fixture
async def runtime(pymongo_client: Any, redis_uri: str) -> AsyncIterator[tuple[Any, str]]:
    db = pymongo_client[f"t_{uuid.uuid4().hex[:12]}"]
    queue = f"watch{uuid.uuid4().hex[:8]}:events"
    await ormevents.init(database=db, redis_uri=redis_uri, event_config={"queue_name": queue})
    yield db, queue
    await ormevents.close()
    await pymongo_client.drop_database(db.name)
    redis.Redis.from_url(redis_uri).delete(queue)


_queued = queued_events_at


async def _until(redis_uri: str, queue: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await ormevents.flush()
        events = _queued(redis_uri, queue)
        if len(events) >= count:
            await asyncio.sleep(0.5)  # anything extra (a duplicate) would show up now
            return _queued(redis_uri, queue)
        await asyncio.sleep(0.1)
    return _queued(redis_uri, queue)


async def _started(redis_uri: str, **options: Any) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(watch(Watched, redis_uri=redis_uri, stop=stop, lease_ttl=1.5, **options))
    await asyncio.sleep(0.8)  # the stream is open
    return stop, task


async def test_raw_writes_become_events_with_diffs_and_own_writes_are_not_doubled(
        runtime: tuple[Any, str], redis_uri: str) -> None:
    db, queue = runtime
    await db.create_collection("watched")
    stop, task = await _started(redis_uri)
    await db.watched.insert_one({"_id": "r1", "name": "raw", "status": "new", "visits": 0, "tags": []})
    await db.watched.update_one({"_id": "r1"}, {"$set": {"status": "on"}, "$inc": {"visits": 2},
                                                "$push": {"tags": "x"}})
    await db.watched.delete_one({"_id": "r1"})
    own = await Watched.create(name="own")
    await own.update(status="mine")
    await Watched.update_many({"name": "own"}, {"$inc": {"visits": 1}})
    await own.reload()
    await own.delete()
    events = await _until(redis_uri, queue, 7)
    stop.set()
    await task
    raw = [(e["name"], e["changes"]) for e in events if e["object_id"] == "r1"]
    assert raw == [("watched.created", {"name": [None, "raw"], "status": [None, "new"], "visits": [None, 0],
                                        "tags": [None, []]}),
                   ("watched.updated", {"status": ["new", "on"], "visits": [0, 2], "tags": [[], ["x"]]}),
                   ("watched.deleted", {"name": ["raw", None], "status": ["on", None], "visits": [2, None],
                                        "tags": [["x"], None]})]
    updated = next(e for e in events if e["object_id"] == "r1" and e["name"] == "watched.updated")
    assert updated["data"] == {"id": "r1", "status": "on", "visits": 2, "tags": ["x"]}  # the changed fields (no name)
    mine = [e["name"] for e in events if e["object_id"] != "r1"]
    assert mine == ["watched.created", "watched.updated", "watched.updated", "watched.deleted"], mine


async def test_a_push_onto_a_non_empty_array_is_followed_as_stored(runtime: tuple[Any, str], redis_uri: str) -> None:
    """Review 13 #1: MongoDB reports a ``$push`` as ``tags.<len>``; the watcher used to die on it (on every restart)."""
    db, queue = runtime
    await db.create_collection("watched")
    stop, task = await _started(redis_uri)
    await db.watched.insert_one({"_id": 1, "name": "a", "tags": ["x"]})
    await db.watched.update_one({"_id": 1}, {"$push": {"tags": "y"}})
    await db.watched.update_one({"_id": 1}, {"$push": {"tags": {"$each": ["z", "w"]}}})
    events = await _until(redis_uri, queue, 3)
    stop.set()
    await task  # still alive: it ends only because it was told to
    stored = await db.watched.find_one({"_id": 1})
    assert [e["changes"].get("tags") for e in events] == [[None, ["x"]], [["x"], ["x", "y"]],
                                                          [["x", "y"], stored["tags"]]]


async def test_an_external_delete_of_an_id_ormevents_once_deleted_is_emitted(
        runtime: tuple[Any, str], redis_uri: str) -> None:
    """Review 13 #8: ormevents' old ``deleted`` row for the id is claimed by its own delete only."""
    db, queue = runtime
    await db.create_collection("watched")
    stop, task = await _started(redis_uri)
    own = await Watched.create(name="x")
    await own.delete()
    await db.watched.insert_one({"_id": own.id, "name": "again"})
    await db.watched.delete_one({"_id": own.id})
    events = await _until(redis_uri, queue, 4)
    stop.set()
    await task
    assert [e["name"] for e in events] == ["watched.created", "watched.deleted", "watched.created",
                                           "watched.deleted"]
    assert events[-1]["changes"]["name"] == ["again", None]


async def test_a_restart_resumes_without_loss_or_duplicate(runtime: tuple[Any, str], redis_uri: str) -> None:
    db, queue = runtime
    await db.create_collection("watched")
    stop, task = await _started(redis_uri)
    await db.watched.insert_one({"_id": 1, "name": "a"})
    assert len(await _until(redis_uri, queue, 1)) == 1
    stop.set()
    await task
    await db.watched.update_one({"_id": 1}, {"$set": {"status": "while-stopped"}})  # nobody watches
    stop, task = await _started(redis_uri)
    await db.watched.update_one({"_id": 1}, {"$set": {"status": "after"}})
    events = await _until(redis_uri, queue, 3)
    stop.set()
    await task
    assert [(e["name"], e["changes"].get("status")) for e in events] == [
        ("watched.created", [None, "new"]), ("watched.updated", ["new", "while-stopped"]),
        ("watched.updated", ["while-stopped", "after"])]


async def test_one_leader_at_a_time(runtime: tuple[Any, str], redis_uri: str) -> None:
    db, queue = runtime
    await db.create_collection("watched")
    first, one = await _started(redis_uri)
    second, two = await _started(redis_uri)
    await db.watched.insert_one({"_id": 1, "name": "a"})
    assert len(await _until(redis_uri, queue, 1)) == 1
    first.set()
    await one  # the leader stops: the other takes over within the lease time
    await asyncio.sleep(2.0)
    await db.watched.insert_one({"_id": 2, "name": "b"})
    events = await _until(redis_uri, queue, 2)
    second.set()
    await two
    assert [e["object_id"] for e in events] == [1, 2]


async def test_a_lost_history_is_reported_loudly(runtime: tuple[Any, str], monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from pymongo.errors import OperationFailure

    class Gone:
        async def watch(self, **options: Any) -> Any:
            raise OperationFailure("Resume of change stream was not possible", code=286)

    class Database:
        def __init__(self, real: Any) -> None:
            self.real = real

        def __getitem__(self, name: str) -> Any:
            return Gone() if name == "watched" else self.real[name]

        async def command(self, *args: Any, **kwargs: Any) -> Any:
            return await self.real.command(*args, **kwargs)

    real = ormevents.get_runtime().database
    await real[watcher.TOKENS].insert_one({"_id": "watched", "token": {"_data": "00"}, "at": "yesterday"})
    monkeypatch.setattr(watcher, "get_runtime", lambda: type("R", (), {"database": Database(real)})())
    with caplog.at_level(logging.ERROR, logger="ormevents.model.watcher"), \
            pytest.raises(ChangeStreamHistoryLostError, match="since yesterday were missed"):
        await watch(Watched)
    assert any("from_now=True" in r.getMessage() for r in caplog.records)


async def test_the_command_line_watches_until_sigterm(pymongo_client: Any, mongo_uri: str, redis_uri: str) -> None:
    name, queue = f"t_{uuid.uuid4().hex[:12]}", f"watchcli{uuid.uuid4().hex[:8]}:events"
    db = pymongo_client[name]
    await db.create_collection("watched")
    command = [sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", queue, "watch",
               "--model", "tests.integration.test_watch:Watched", "--mongo-url", mongo_uri, "--database", name]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not await db[watcher.TOKENS].find_one({"_id": "watched"}) and time.monotonic() < deadline:
            await db.watched.insert_one({"name": "probe"})  # stored once the watcher saw a change
            await asyncio.sleep(0.3)
        await db.watched.insert_one({"_id": "cli", "name": "raw"})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(e["object_id"] == "cli" for e in _queued(redis_uri, queue)):
            await asyncio.sleep(0.1)
        found = [e["name"] for e in _queued(redis_uri, queue) if e["object_id"] == "cli"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
        events = _queued(redis_uri, queue)
        await pymongo_client.drop_database(name)
        redis.Redis.from_url(redis_uri).delete(queue)
    assert found == ["watched.created"], (out, err, [(e["name"], e["object_id"]) for e in events])
    assert process.returncode == 0 and "watcher stopped" in out, err
    bad = subprocess.run([*command[:8], "--model", "json:dumps", *command[10:]], cwd=ROOT, capture_output=True, check=False,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "module:Class of an EventModel" in bad.stderr, bad.stderr
