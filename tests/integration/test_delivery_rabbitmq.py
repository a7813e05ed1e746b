"""The same delivery on a RabbitMQ broker (the schedule, results and failed jobs stay in Redis).

Uses the shared RabbitMQ at ``ORMEVENTS_TEST_AMQP_URL`` (default amqp://guest:guest@127.0.0.1:5672//)
with a uniquely named queue that is deleted afterwards; skipped when it is unreachable.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

import ormevents
from ormevents import Event, event_bus
from tests.integration.test_delivery import records, wait_for
from tests.integration.worker_process import WorkerProcess, running
from tests.support.timing import LATE_SLACK

pytestmark = pytest.mark.integration

AMQP_URL = os.environ.get("ORMEVENTS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(scope="module")
def amqp_url() -> str:
    try:
        with Connection(AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.skip(f"RabbitMQ at {AMQP_URL} is unreachable ({exc}); the RabbitMQ variant needs it")
    return AMQP_URL


@pytest.fixture(scope="module")
def queue(amqp_url: str) -> Iterator[str]:
    name = f"ormevents-test-{uuid.uuid4().hex[:10]}"
    yield name
    with Connection(amqp_url, connect_timeout=2) as conn:  # only our own queues and exchanges
        channel = conn.channel()
        for declared in (name, f"{name}:slow"):
            Queue(declared, Exchange(declared), routing_key=declared, channel=channel).delete()
            Exchange(declared, channel=channel).delete()


@pytest.fixture(scope="module")
def worker(queue: str, redis_uri: str, amqp_url: str) -> Iterator[WorkerProcess]:
    with running(WorkerProcess(queue, redis_uri, broker_url=amqp_url)) as process:
        yield process


@pytest.fixture
async def bus(worker: WorkerProcess, queue: str, redis_uri: str, amqp_url: str, mongo_uri: str) -> AsyncIterator[Any]:
    await ormevents.init(mongo_uri=mongo_uri, database="delivery_tests", redis_uri=redis_uri, broker_url=amqp_url,
                         event_config={"queue_name": queue})
    yield event_bus
    await ormevents.close()


async def test_sync_and_async_handlers_on_rabbitmq(bus: Any, rdb: redis.Redis, queue: str) -> None:
    tag = uuid.uuid4().hex[:8]
    event = Event(name="order.created", data={"tag": tag})
    await bus.publish(event)
    await wait_for(lambda: records(rdb, queue, "t.sync", tag) and records(rdb, queue, "t.async", tag))
    await asyncio.sleep(0.3)
    assert len(records(rdb, queue, "t.sync", tag)) == len(records(rdb, queue, "t.async", tag)) == 1
    assert records(rdb, queue, "t.async", tag)[0]["event_id"] == str(event.id)


async def test_retry_on_rabbitmq(bus: Any, rdb: redis.Redis, queue: str) -> None:
    tag = uuid.uuid4().hex[:8]
    await bus.publish(Event(name="job.run", data={"tag": tag, "fail_times": 2}))
    flaky = await wait_for(lambda: (r := records(rdb, queue, "t.flaky", tag)) and len(r) == 3 and r)
    await asyncio.sleep(0.5)
    assert len(records(rdb, queue, "t.flaky", tag)) == 3 and len(records(rdb, queue, "t.steady", tag)) == 1
    measured = [b["t"] - a["t"] for a, b in zip(flaky, flaky[1:])]
    for got, expected in zip(measured, [0.3, 0.6]):
        assert expected - 0.02 <= got <= expected + LATE_SLACK, measured


async def test_delay_and_cancel_on_rabbitmq(bus: Any, rdb: redis.Redis, queue: str) -> None:
    tag = uuid.uuid4().hex[:8]
    start = time.time()
    kept, cancelled = (Event(name="reminder.due", data={"tag": tag, "k": k}) for k in ("kept", "cancelled"))
    await bus.publish(kept, delay=1.0)
    await bus.publish(cancelled, delay=1.0)
    assert await bus.cancel(cancelled.id)
    await wait_for(lambda: records(rdb, queue, "t.reminder", tag))
    await asyncio.sleep(0.5)
    recs = records(rdb, queue, "t.reminder", tag)
    assert [r["data"]["k"] for r in recs] == ["kept"]
    assert 1.0 <= recs[0]["t"] - start <= 1.0 + LATE_SLACK


def waiting_on(amqp_url: str, name: str) -> int:
    """Messages ready on RabbitMQ queue ``name`` (0 if it does not exist yet)."""
    with Connection(amqp_url, connect_timeout=2) as conn:
        try:
            return int(Queue(name, channel=conn.channel()).queue_declare(passive=True).message_count)
        except Exception:
            return 0


async def test_routed_handler_on_its_own_rabbitmq_queue(
    bus: Any, rdb: redis.Redis, queue: str, redis_uri: str, amqp_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    await bus.publish(Event(name="routed.job", data={"tag": tag}))
    await wait_for(lambda: records(rdb, queue, "t.unrouted", tag))
    await wait_for(lambda: waiting_on(amqp_url, f"{queue}:slow") == 1)
    assert records(rdb, queue, "t.routed", tag) == []
    slow = WorkerProcess(queue, redis_uri, broker_url=amqp_url, consume=[f"{queue}:slow"], concurrency=1)
    try:
        await asyncio.to_thread(slow.start)
        await wait_for(lambda: records(rdb, queue, "t.routed", tag), timeout=15)
    finally:
        await asyncio.to_thread(slow.cleanup)
    assert waiting_on(amqp_url, f"{queue}:slow") == 0


async def test_model_writes_through_the_outbox_on_rabbitmq(bus: Any, rdb: redis.Redis, queue: str) -> None:
    """With an amqp:// broker the outbox hands events over through Celery's producer (off the loop)
    and marks them sent in Redis; the worker runs the handlers once."""
    from ormevents import EventModel, EventModelConfig

    class DeliveryUser(EventModel):
        model_config = EventModelConfig(event_data=("tag",))  # the handlers record under it
        _collection = "delivery_users"
        tag: str
        status: str = "inactive"

    tag = uuid.uuid4().hex[:8]
    users = [await DeliveryUser.create(tag=tag) for _ in range(3)]
    await users[0].update(status="active")
    await ormevents.flush()
    created = await wait_for(lambda: len(records(rdb, queue, "t.model_created_sync", tag)) == 3 and
                             records(rdb, queue, "t.model_created_sync", tag), timeout=20)
    updated = await wait_for(lambda: records(rdb, queue, "t.model_updated_async", tag), timeout=20)
    await asyncio.sleep(0.5)
    assert {r["data"]["id"]["$oid"] for r in created} == {str(u.id) for u in users}
    assert len(records(rdb, queue, "t.model_created_sync", tag)) == 3 and len(updated) == 1
    assert updated[0]["changes"] == {"status": ["inactive", "active"]}
    sent = rdb.zmscore(f"{queue}:outbox:sent", [r["event_id"] for r in created + updated])
    assert all(score is not None for score in sent), "events handed over through RabbitMQ are marked sent in Redis"


async def test_events_handed_over_together_travel_in_batches_on_rabbitmq(bus: Any, rdb: redis.Redis,
                                                                         queue: str) -> None:
    """publish_many on RabbitMQ sends ormevents.dispatch_batch messages through Celery's producer;
    the worker runs each event's handlers once."""
    tag = uuid.uuid4().hex[:8]
    events = [Event(name="order.created", data={"tag": tag, "i": i}) for i in range(20)]
    assert await bus.publish_many(events) == 20
    await wait_for(lambda: len(records(rdb, queue, "t.sync", tag)) >= 20 and
                   len(records(rdb, queue, "t.async", tag)) >= 20, timeout=20)
    await asyncio.sleep(0.5)
    for handler in ("t.sync", "t.async"):
        assert sorted(r["event_id"] for r in records(rdb, queue, handler, tag)) == sorted(str(e.id) for e in events)
