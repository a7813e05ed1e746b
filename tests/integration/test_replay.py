"""Replay of stored events to one named handler (issue 16) with real workers on SecantusDB:
200 events written while only ``replay.billing`` existed; a worker with the new handler
``replay.audit`` then gets them by a replay, each once, through the normal worker path (status
marked as a replay); the other handler is untouched; a second replay runs nothing; ``force``
runs again; bad input (unknown handler, a handler no running worker imports, unknown model,
since after until, a bad rate) is refused before anything is sent. A replay sends a handler only
the events its pattern wants (and the worker skips one it does not), and a replay after a failed
replay run runs it again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

import ormevents
from ormevents import EventModel, event_bus
from ormevents.errors import InvalidFilterError, UnknownHandlerError, UnknownModelError
from tests.integration.test_delivery import wait_for
from tests.integration.worker_process import ROOT, WorkerProcess, running

pytestmark = pytest.mark.integration
DOCUMENTS, WRITES = 20, 10  # 200 events


class Tally(EventModel):
    _collection = "tallies"
    name: str
    n: int = 0


@pytest.fixture(scope="module")
def queue() -> str:
    return f"replay{uuid.uuid4().hex[:8]}:events"


def worker(queue: str, redis_uri: str, new: bool) -> WorkerProcess:
    return WorkerProcess(queue, redis_uri, extra_env={"ORMEVENTS_IMPORTS": "tests.integration.replay_handlers",
                                                     "REPLAY_NEW": "1" if new else "0"})


@pytest.fixture
def rdb(redis_uri: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_uri)
    yield client
    client.close()


@pytest.fixture
async def app(queue: str, redis_uri: str, mongo_uri: str) -> AsyncIterator[Any]:
    await ormevents.init(mongo_uri=mongo_uri, database=f"replay_{uuid.uuid4().hex[:8]}", redis_uri=redis_uri,
                         event_config={"queue_name": queue})
    yield ormevents.get_runtime().database
    await ormevents.close()


def counts(rdb: redis.Redis, queue: str, handler: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in rdb.hgetall(f"{queue}:replay:{handler}").items()}


def cli(redis_uri: str, queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", queue, *args],
                          check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


async def test_a_replay_runs_a_new_handler_once_per_stored_event_and_nothing_else(
        app: Any, queue: str, redis_uri: str, mongo_uri: str, rdb: redis.Redis) -> None:
    with running(worker(queue, redis_uri, new=False)):
        tallies = [await Tally.create(name=f"t{i}") for i in range(DOCUMENTS)]
        for step in range(1, WRITES):
            for tally in tallies:
                await tally.update(n=step)
        await ormevents.flush(cleanup=True)
        await wait_for(lambda: len(counts(rdb, queue, "replay.billing")) == DOCUMENTS * WRITES, timeout=60)
        sent_before = rdb.llen(queue)

        with pytest.raises(UnknownHandlerError, match="no running worker has a handler named 'replay.audit'"):
            await event_bus.replay(handler="replay.audit", model=Tally)  # its module is not imported by the worker
        with pytest.raises(UnknownHandlerError, match="'replay.nope'"):
            await event_bus.replay(handler="replay.nope", model="tally")
        with pytest.raises(UnknownModelError, match="'nosuch'"):
            await event_bus.replay(handler="replay.billing", model="nosuch")
        with pytest.raises(InvalidFilterError, match="is after until"):
            await event_bus.replay(handler="replay.billing", model=Tally, since=datetime(2026, 2, 1, tzinfo=UTC),
                                   until=datetime(2026, 1, 1, tzinfo=UTC))
        with pytest.raises(InvalidFilterError, match="rate"):
            await event_bus.replay(handler="replay.billing", model=Tally, rate="fast")
        assert rdb.llen(queue) == sent_before == 0 and not counts(rdb, queue, "replay.audit")

    with running(worker(queue, redis_uri, new=True)) as new_worker:
        dry = await event_bus.replay(handler="replay.audit", model="tally", dry_run=True)
        assert (dry.matched, dry.sent, dry.skipped) == (200, 200, 0) and rdb.llen(queue) == 0, dry
        seen: list[int] = []
        first = await event_bus.replay(handler="replay.audit", model=Tally, progress=seen.append)
        print(f"replay of {first.matched} events sent in {first.seconds * 1000:.0f} ms ({first.per_second:,.0f} ev/s)")
        assert (first.matched, first.sent, first.skipped) == (200, 200, 0) and seen[-1] == 200, first
        await wait_for(lambda: len(counts(rdb, queue, "replay.audit")) == 200, timeout=60)
        await asyncio.sleep(0.5)  # any duplicate would land now
        audit, billing = counts(rdb, queue, "replay.audit"), counts(rdb, queue, "replay.billing")
        assert set(audit.values()) == {1} and audit.keys() == billing.keys() and set(billing.values()) == {1}

        event_id = next(iter(audit))
        status = await event_bus.get_handler_status(event_id, "replay.audit")
        assert status is not None and status.state == "succeeded" and status.replay, status
        original = await event_bus.get_handler_status(event_id, "replay.billing")
        assert original is not None and not original.replay
        assert f"started on event {event_id} (attempt 1, replay)" in new_worker.log()

        second = await event_bus.replay(handler="replay.audit", model=Tally)
        assert (second.sent, second.skipped) == (0, 200), second
        where = ["--mongo-url", mongo_uri, "--database", app.name]
        counted = await asyncio.to_thread(cli, redis_uri, queue, "replay", "--handler", "replay.audit", "--model",
                                          "tally", "--since", "1d", "--dry-run", *where)
        assert counted.returncode == 0 and "200 events; would send 0, would skip 200" in counted.stdout, counted
        unknown = await asyncio.to_thread(cli, redis_uri, queue, "replay", "--handler", "replay.gone", "--model",
                                          "tally", "--since", "1d", *where)
        assert unknown.returncode == 1 and "no running worker has a handler named 'replay.gone'" in unknown.stderr
        history = await tallies[0].history()
        forced = await event_bus.replay(handler="replay.audit", model=Tally, force=True,
                                        where=lambda entry: entry.id in {e.id for e in history})
        assert (forced.matched, forced.sent) == (WRITES, WRITES), forced
        await wait_for(lambda: sum(counts(rdb, queue, "replay.audit").values()) == 200 + WRITES, timeout=30)
        await asyncio.sleep(0.3)
        assert {e.id: counts(rdb, queue, "replay.audit")[e.id] for e in history} == {e.id: 2 for e in history}
        assert counts(rdb, queue, "replay.billing") == billing


async def test_a_replay_honours_the_pattern_and_a_failed_replay_run_can_be_replayed(
        app: Any, queue: str, redis_uri: str, rdb: redis.Redis) -> None:
    from ormevents.delivery.celery.replay import Replayer
    from ormevents.delivery.outbox.history import read_model
    from ormevents.jobs.keys import Keys
    from ormevents.jobs.status import read_status

    rdb.set(f"{queue}:replay:fail", 1)
    tally = await Tally.create(name="p")
    await tally.update(n=1)
    await ormevents.flush(cleanup=True)
    rdb.delete(queue)  # the handler is added after the events were delivered: drop their dispatches
    created, updated = await tally.history()
    with running(worker(queue, redis_uri, new=True)) as new_worker:
        # replay.created (on tally.created) is not registered here: the pattern its workers publish decides
        dry = await event_bus.replay(handler="replay.created", model=Tally, dry_run=True)
        assert (dry.matched, dry.sent) == (1, 1), dry
        first = await event_bus.replay(handler="replay.created", model=Tally)
        assert first.sent == 1, first

        def state() -> str | None:
            status = read_status(rdb, Keys(queue), created.id)
            return None if status is None or "replay.created" not in status.handlers \
                else status.handlers["replay.created"].state

        await wait_for(lambda: state() == "failed", timeout=20)
        rdb.delete(f"{queue}:replay:fail")  # fixed: replay again
        second = await event_bus.replay(handler="replay.created", model=Tally)
        assert (second.sent, second.skipped) == (1, 0), second
        await wait_for(lambda: counts(rdb, queue, "replay.created") == {created.id: 1}, timeout=20)

        stored = [e async for e in read_model(app, "tallies") if e.id == updated.id]
        publisher = ormevents.get_runtime().publisher
        sent = await asyncio.to_thread(Replayer(publisher, "replay.created", None, force=False, dry_run=False).batch,
                                       stored)  # a replayed run of an event the handler does not want
        assert sent == (1, 0)
        await wait_for(lambda: "does not listen to event " + updated.id in new_worker.log(), timeout=20)
        assert counts(rdb, queue, "replay.created") == {created.id: 1}
        assert await event_bus.get_handler_status(updated.id, "replay.created") is None

