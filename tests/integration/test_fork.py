"""A process forked after ``init()`` (gunicorn ``--preload``, multiprocessing) writes and publishes
(issue 10, item 4): the child reconnects to MongoDB and the broker instead of using the parent's
connections and threads. Real SecantusDB and Redis; events are read back from the broker list."""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import ormevents
from ormevents import Event, EventModel, event_bus
from tests.integration.test_write_cancellation import broker_events

pytestmark = pytest.mark.integration


class ForkNote(EventModel):
    text: str


@pytest.fixture
def rdb(redis_uri: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_uri)
    yield client
    client.close()


def _child(note_id: str, report: str) -> None:
    """In the forked child: a new loop, the runtime inherited from the parent."""

    async def main() -> None:
        await event_bus.publish(Event(name="fork_note.hello", data={"from": "child"}))  # the broker alone first
        note = await ForkNote.get(note_id)
        assert note is not None, "the child cannot read the document"
        await note.update(text="child")
        await note.emit("forked", data={"from": "child"})
        await ormevents.flush()  # the hand-off to the broker follows the write in the background

    try:
        asyncio.run(main())
        Path(report).write_text("ok")
    except BaseException:
        Path(report).write_text(traceback.format_exc())
        raise


async def test_a_forked_child_writes_and_publishes(mongo_uri: str, redis_uri: str, rdb: redis.Redis,
                                                   pymongo_client: Any) -> None:
    queue = f"fork{uuid.uuid4().hex[:8]}:events"
    database = f"fork_{uuid.uuid4().hex[:10]}"
    await ormevents.init(mongo_uri=mongo_uri, database=database, redis_uri=redis_uri,
                         event_config={"queue_name": queue, "publish_retry": {"timeout": 2.0}})
    try:
        note = await ForkNote.create(text="parent")  # the parent's client, send threads and broker connection are live
        report = tempfile.NamedTemporaryFile(prefix="ormevents-fork-", delete=False).name
        child = multiprocessing.get_context("fork").Process(target=_child, args=(str(note.id), report))
        child.start()
        await asyncio.to_thread(child.join, 60)
        if child.is_alive():
            child.kill()
            await asyncio.to_thread(child.join)
        outcome = Path(report).read_text() or f"no report (exit code {child.exitcode})"
        Path(report).unlink(missing_ok=True)
        assert child.exitcode == 0 and outcome == "ok", f"the forked child failed (exit code {child.exitcode}):\n{outcome}"
        names = [(w["name"], w["data"].get("text") or w["data"].get("from")) for w in broker_events(rdb, queue)]
        assert {("fork_note.hello", "child"), ("fork_note.updated", "child"), ("fork_note.forked", "child")} <= set(names), names
        stored = await pymongo_client[database]["fork_notes"].find_one({"_id": note.id})
        assert stored["text"] == "child"
        await note.reload()
        await note.update(text="parent again")  # the parent's connections still work after the child's exit
        await ormevents.flush()
        assert [w["name"] for w in broker_events(rdb, queue)][-1] == "fork_note.updated"
    finally:
        await ormevents.close()
        await pymongo_client.drop_database(database)
