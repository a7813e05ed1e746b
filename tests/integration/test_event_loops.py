"""ormevents in new event loops (issue 10, item 3): pytest-asyncio's defaults (strict mode, a loop
per test) and ``asyncio.run()`` twice in one process. Both run in subprocesses, on the suite's
SecantusDB, because this suite itself runs on one session-wide loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio

from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.publisher import CeleryPublisher
from ormevents.delivery.outbox.relay import Relay
from ormevents.jobs.keys import Keys
from tests.integration.worker_process import ROOT
from tests.support.broker_queue import queued_events

pytestmark = pytest.mark.integration

DEFAULT_LOOPS = ["-o", "asyncio_mode=strict", "-o", "asyncio_default_fixture_loop_scope=function",
                 "-o", "asyncio_default_test_loop_scope=function"]


def _run(argv: list[str], mongo_uri: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "ORMEVENTS_TEST_MONGO_URL": mongo_uri, "PYTHONPATH": str(ROOT), **env})


async def test_a_user_suite_under_pytest_asyncio_defaults_passes(mongo_uri: str, pymongo_client: Any) -> None:
    database = f"loops_{uuid.uuid4().hex[:10]}"
    try:
        run = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *DEFAULT_LOOPS,
                    "tests/loops/default_loops_cases.py"], mongo_uri, LOOPS_DATABASE=database)
        summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
        print(summary)
        assert run.returncode == 0 and " 6 passed" in f" {summary}", f"{summary}\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    finally:
        await pymongo_client.drop_database(database)


SCRIPT = textwrap.dedent("""
    import asyncio, os, sys
    import ormevents
    from ormevents import EventModel

    class RunNote(EventModel):
        text: str

    URI, DB = os.environ["ORMEVENTS_TEST_MONGO_URL"], sys.argv[1]

    async def first():
        await ormevents.init(mongo_uri=URI, database=DB)
        await RunNote.create(text="one")

    async def second():
        note = await RunNote.find_one({"text": "one"})   # the runtime of the first loop
        await note.update(text="two")
        await ormevents.init(mongo_uri=URI, database=DB)  # and a new one
        await RunNote.create(text="three")
        print(sorted(n.text for n in await RunNote.find()))
        await ormevents.close()

    asyncio.run(first())
    asyncio.run(second())
""")


async def test_asyncio_run_twice_in_one_process(mongo_uri: str, pymongo_client: Any) -> None:
    database = f"loops_{uuid.uuid4().hex[:10]}"
    try:
        run = _run([sys.executable, "-W", "error::RuntimeWarning", "-c", SCRIPT, database], mongo_uri)
        assert run.returncode == 0, f"second asyncio.run() failed:\n{run.stderr[-3000:]}"
        assert run.stdout.strip() == "['three', 'two']", run.stdout
    finally:
        await pymongo_client.drop_database(database)


TEARDOWN = textwrap.dedent("""
    import asyncio, os, sys
    import ormevents
    from ormevents import EventModel

    class LoopNote(EventModel):
        text: str

    URI, DB, REDIS, QUEUE = os.environ["ORMEVENTS_TEST_MONGO_URL"], sys.argv[1], sys.argv[2], sys.argv[3]

    async def first():
        await ormevents.init(mongo_uri=URI, database=DB, redis_uri=REDIS, event_config={"queue_name": QUEUE})
        await LoopNote.create(text="last")  # acknowledged; the loop closes now, before its hand-off (no close())

    async def second():
        await LoopNote.create(text="next loop")   # a new client and dispatcher for this loop
        await ormevents.close()

    asyncio.run(first())
    asyncio.run(second())
""")


async def test_a_write_acknowledged_as_its_loop_closes_is_delivered_by_the_relay(
        mongo_uri: str, redis_uri: str, pymongo_client: Any) -> None:
    """``asyncio.run()`` ends right after a save: its hand-off never runs, the record stays in
    MongoDB, and the relay publishes it once; the next loop's own write is not published twice."""
    database, queue = f"loops_{uuid.uuid4().hex[:10]}", f"loops{uuid.uuid4().hex[:8]}:events"
    publisher = CeleryPublisher(DeliverySettings(redis_url=redis_uri, queue_name=queue))
    client = redis.asyncio.Redis.from_url(redis_uri)
    try:
        run = _run([sys.executable, "-W", "error::RuntimeWarning", "-c", TEARDOWN, database, redis_uri, queue],
                   mongo_uri)
        assert run.returncode == 0, run.stderr[-3000:]
        rdb = redis.Redis.from_url(redis_uri)

        def queued() -> list[str]:
            return [event["data"]["text"] for event in queued_events(rdb, queue)]

        before = queued()  # the first loop's push is cancelled at the latest when its loop closes
        publisher.outbox.bind(lambda: pymongo_client[database], publisher.outbox.config)
        relay = Relay(pymongo_client[database], publisher, client, Keys(queue), grace=0.0)
        published = await relay.run_once()
        print(f"queued before the relay: {before}; the relay published {published}")
        assert sorted(queued()) == ["last", "next loop"], f"lost or published twice: {queued()}"
        assert published == (0 if "last" in before else 1)
        assert await pymongo_client[database]["loop_notes"].count_documents({"_oe_pending_at": {"$exists": True}}) == 0
    finally:
        await publisher.close()
        await client.aclose()
        await pymongo_client.drop_database(database)
