"""The relay inside a real ``celery worker`` (issue 12): with ``ORMEVENTS_MONGO_URL`` and
``ORMEVENTS_DATABASE`` the worker's main process publishes what writers could not hand over, and
its handlers run once; without them it says it runs no relay. Also ``ormevents outbox status``
and ``ormevents relay --once``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import EventModel, EventModelConfig
from tests.integration.test_delivery import records, wait_for
from tests.integration.worker_process import ROOT, WorkerProcess, running
from tests.support.servers import free_port
from tests.support.broker_queue import queued_events_at

pytestmark = pytest.mark.integration


class DeliveryUser(EventModel):
    model_config = EventModelConfig(event_data=("tag",))  # the handlers record under it
    _collection = "delivery_users"
    tag: str
    status: str = "inactive"


@pytest.fixture(scope="module")
def queue() -> str:
    return f"relayw{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module")
def database_name() -> str:
    return f"relayw_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def relay_worker(queue: str, redis_uri: str, mongo_uri: str, database_name: str) -> Iterator[WorkerProcess]:
    env = {"ORMEVENTS_MONGO_URL": mongo_uri, "ORMEVENTS_DATABASE": database_name, "ORMEVENTS_RELAY_GRACE": "0.5"}
    with running(WorkerProcess(queue, redis_uri, extra_env=env)) as process:
        yield process


def cli(redis_uri: str, queue: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", queue, *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


async def test_the_worker_relays_events_a_writer_could_not_hand_over(
        relay_worker: WorkerProcess, queue: str, redis_uri: str, mongo_uri: str, database_name: str,
        rdb: redis.Redis) -> None:
    assert "ormevents outbox relay started" in relay_worker.log(), relay_worker.log()[-2000:]
    t = uuid.uuid4().hex[:8]
    await ormevents.init(mongo_uri=mongo_uri, database=database_name, redis_uri=f"redis://127.0.0.1:{free_port()}/0",
                         event_config={"queue_name": queue, "publish_retry": {"max_retries": 0, "timeout": 0.3},
                                       "redis_check": "skip"})
    try:
        users = [await DeliveryUser.create(tag=t) for _ in range(5)]
        for user in users:
            await user.update(status="active")
    finally:
        await ormevents.close()
    created = await wait_for(lambda: len(records(rdb, queue, "t.model_created_sync", t)) == 5 and
                             records(rdb, queue, "t.model_created_sync", t), timeout=30)
    updated = await wait_for(lambda: len(records(rdb, queue, "t.model_updated_async", t)) == 5 and
                             records(rdb, queue, "t.model_updated_async", t), timeout=30)
    ids = {str(u.id) for u in users}
    assert {r["data"]["id"]["$oid"] for r in created} == ids and {r["data"]["id"]["$oid"] for r in updated} == ids
    assert all(r["changes"] == {"status": ["inactive", "active"]} for r in updated)
    status = cli(redis_uri, queue, "outbox", "status", "--json",
                 env={"ORMEVENTS_MONGO_URL": mongo_uri, "ORMEVENTS_DATABASE": database_name})
    assert status.returncode == 0, status.stderr
    figures = json.loads(status.stdout)
    print(f"outbox status after the relay: {figures}")
    assert figures["relay"]["lag_seconds"] is not None and figures["relay"]["lag_seconds"] < 30, figures
    assert figures["relay"]["holders"].get("delivery_users"), figures


async def test_a_worker_without_the_mongo_settings_says_it_runs_no_relay(queue: str, redis_uri: str) -> None:
    process = WorkerProcess(f"{queue}x", redis_uri)
    try:
        process.start()
        log = process.log()
    finally:
        process.cleanup()
    assert "no outbox relay in this worker" in log and "ORMEVENTS_MONGO_URL" in log, log[-2000:]


async def test_outbox_status_and_relay_once_from_the_command_line(
        redis_uri: str, mongo_uri: str, pymongo_client: Any) -> None:
    queue, database = f"cli{uuid.uuid4().hex[:8]}:events", f"cli_{uuid.uuid4().hex[:8]}"
    await ormevents.init(mongo_uri=mongo_uri, database=database, redis_uri=f"redis://127.0.0.1:{free_port()}/0",
                         event_config={"queue_name": queue, "publish_retry": {"max_retries": 0, "timeout": 0.3},
                                       "redis_check": "skip"})
    try:
        for i in range(7):
            await DeliveryUser.create(tag=f"c{i}")
    finally:
        await ormevents.close()
    env = {"ORMEVENTS_MONGO_URL": mongo_uri, "ORMEVENTS_DATABASE": database}
    try:
        before = json.loads(cli(redis_uri, queue, "outbox", "status", "--json", env=env).stdout)
        assert before["pending"] == 7 and before["collections"]["delivery_users"]["documents"] == 7, before
        assert before["oldest_age_seconds"] is not None and before["relay"]["lag_seconds"] is None, before
        table = cli(redis_uri, queue, "outbox", "status", env=env)
        assert table.returncode == 0 and "7 events pending" in table.stdout, table.stdout + table.stderr
        once = cli(redis_uri, queue, "relay", "--once", "--grace", "0", env=env)
        assert once.returncode == 0 and "7 events published" in once.stdout, once.stdout + once.stderr
        after = json.loads(cli(redis_uri, queue, "outbox", "status", "--json", env=env).stdout)
        print(f"outbox status before: pending {before['pending']}; after relay --once: pending {after['pending']}")
        assert after["pending"] == 0 and after["relay"]["lag_seconds"] is not None, after
        assert len(queued_events_at(redis_uri, queue)) == 7  # in dispatch_batch messages (2+2+2+1)
    finally:
        await pymongo_client.drop_database(database)
