"""Events delivered through a real Celery worker (prefork, Redis broker) to real handlers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import Event, event_bus
from tests.integration.worker_process import WorkerProcess, running
from tests.support.timing import LATE_SLACK

pytestmark = pytest.mark.integration

LINEAR = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.5}


@pytest.fixture(scope="module")
def queue() -> str:
    return f"t{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module")
def worker(queue: str, redis_uri: str, mongo_uri: str) -> Iterator[WorkerProcess]:
    settings = {"ORMEVENTS_TEST_MONGO_URL": mongo_uri, "ORMEVENTS_RETRY_POLICY": json.dumps(LINEAR)}
    with running(WorkerProcess(queue, redis_uri, extra_env=settings)) as process:
        yield process


@pytest.fixture
async def bus(worker: WorkerProcess, queue: str, redis_uri: str, mongo_uri: str) -> AsyncIterator[Any]:
    await ormevents.init(mongo_uri=mongo_uri, database="delivery_tests", redis_uri=redis_uri,
                         event_config={"queue_name": queue})
    yield event_bus
    await ormevents.close()


def records(rdb: redis.Redis, queue: str, handler: str, tag: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in rdb.lrange(f"{queue}:rec:{handler}:{tag}", 0, -1)]


async def wait_for(check: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def test_sync_async_and_typed_handlers_all_run_once(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="order.created", data={"tag": t, "total": 42})
    await bus.publish(event)
    for handler in ("t.sync", "t.async", "t.typed", "t.order_any", "t.order_deep"):
        await wait_for(lambda: records(rdb, queue, handler, t))
    await asyncio.sleep(0.3)
    assert len(records(rdb, queue, "t.sync", t)) == 1
    assert len(records(rdb, queue, "t.async", t)) == 1
    assert records(rdb, queue, "t.typed", t) == [{"total": 42}]
    assert records(rdb, queue, "t.sync", t)[0]["event_id"] == str(event.id)
    assert records(rdb, queue, "t.any_deleted", t) == []
    assert json.loads(rdb.hget(f"{queue}:done:{event.id}", "t.sync")) == {"seen": t}


def stats(rdb: redis.Redis, queue: str) -> dict[str, int]:
    return {k: int(v) for k, v in rdb.hgetall(f"{queue}:stats").items()}


def gaps(recs: list[dict[str, Any]]) -> list[float]:
    return [round(b["t"] - a["t"], 3) for a, b in zip(recs, recs[1:])]


async def test_wildcards(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    await bus.publish(Event(name="order.deleted", data={"tag": t}))
    await bus.publish(Event(name="order.item.shipped", data={"tag": t}))
    await bus.publish(Event(name="invoice.deleted", data={"tag": t}))
    await wait_for(lambda: len(records(rdb, queue, "t.order_deep", t)) == 2)
    await wait_for(lambda: len(records(rdb, queue, "t.any_deleted", t)) == 2)
    await wait_for(lambda: records(rdb, queue, "t.order_any", t))
    await asyncio.sleep(0.3)
    assert [r["name"] for r in records(rdb, queue, "t.order_any", t)] == ["order.deleted"]
    assert sorted(r["name"] for r in records(rdb, queue, "t.any_deleted", t)) == ["invoice.deleted", "order.deleted"]
    assert sorted(r["name"] for r in records(rdb, queue, "t.order_deep", t)) == ["order.deleted", "order.item.shipped"]


async def test_condition_false_sends_no_task(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    before = stats(rdb, queue)
    await bus.publish(Event(name="account.updated", data={"tag": t, "status": "active", "plan": "pro"},
                            changes={"plan": ("free", "pro")}))
    await wait_for(lambda: stats(rdb, queue).get("unmatched", 0) == before.get("unmatched", 0) + 1)
    await bus.publish(Event(name="account.updated", data={"tag": t, "status": "active"},
                            changes={"status": ("new", "active")}))
    await wait_for(lambda: records(rdb, queue, "t.activated", t))
    after = stats(rdb, queue)
    assert after.get("dispatched", 0) == before.get("dispatched", 0) + 1  # only the second event made a task
    assert records(rdb, queue, "t.activated", t)[0]["changes"] == {"status": ["new", "active"]}


async def test_failing_handler_is_retried_alone(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    await bus.publish(Event(name="job.run", data={"tag": t, "fail_times": 2}))
    flaky = await wait_for(lambda: (r := records(rdb, queue, "t.flaky", t)) and len(r) == 3 and r)
    await asyncio.sleep(0.8)
    assert len(records(rdb, queue, "t.flaky", t)) == 3
    assert len(records(rdb, queue, "t.steady", t)) == 1
    for measured, expected in zip(gaps(flaky), [0.3, 0.6]):
        assert expected - 0.02 <= measured <= expected + LATE_SLACK, gaps(flaky)
    event_id = flaky[0]["event_id"]
    assert json.loads(rdb.hget(f"{queue}:done:{event_id}", "t.flaky")) == "finally"


async def test_linear_retries_from_event_config_then_failed_job(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="job.linear", data={"tag": t})
    await bus.publish(event)
    job = await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", f"{event.id}:t.linear"), timeout=10)
    assert job
    recs = records(rdb, queue, "t.linear", t)
    assert len(recs) == 4  # 1 attempt + max_retries=3
    print(f"\nlinear retry gaps {gaps(recs)} (policy 0.2, 0.4, 0.5)")
    for measured, expected in zip(gaps(recs), [0.2, 0.4, 0.5]):
        assert expected - 0.02 <= measured <= expected + LATE_SLACK, gaps(recs)
    failed = await bus.get_failed_job(f"{event.id}:t.linear")
    assert (failed.attempts, failed.error_type, failed.error_message) == (4, "builtins.ValueError", "linear says no")
    assert "linear says no" in failed.traceback and failed.event["id"] == str(event.id)
    assert failed.first_attempt_at is not None and failed.first_attempt_at <= failed.failed_at
    assert [j.id for j in (await bus.get_failed_jobs(handler="t.linear")).items][:1] == [failed.id]


async def test_exponential_retries_measured(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="job.expo", data={"tag": t})
    await bus.publish(event)
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", f"{event.id}:t.expo"), timeout=10)
    recs = records(rdb, queue, "t.expo", t)
    assert len(recs) == 4
    print(f"\nexponential retry gaps {gaps(recs)} (policy 0.25, 0.5, 1.0)")
    for measured, expected in zip(gaps(recs), [0.25, 0.5, 1.0]):
        assert expected - 0.02 <= measured <= expected + LATE_SLACK, gaps(recs)
    job = json.loads(rdb.hget(f"{queue}:failed:jobs", f"{event.id}:t.expo"))
    assert job["error_type"] == "builtins.ConnectionError" and job["attempts"] == 4


async def test_dont_retry_on_goes_straight_to_failed(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="job.fatal", data={"tag": t})
    await bus.publish(event)
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", f"{event.id}:t.fatal"))
    await asyncio.sleep(0.3)
    assert len(records(rdb, queue, "t.fatal", t)) == 1
    assert json.loads(rdb.hget(f"{queue}:failed:jobs", f"{event.id}:t.fatal"))["attempts"] == 1


async def test_delay_and_eta(bus: Any, rdb: redis.Redis, queue: str) -> None:
    from datetime import UTC, datetime, timedelta

    t = tag()
    start = time.time()
    await bus.publish(Event(name="reminder.due", data={"tag": t, "kind": "delay"}), delay=1.5)
    await bus.publish(Event(name="reminder.due", data={"tag": t, "kind": "eta"}),
                      eta=datetime.now(UTC) + timedelta(seconds=1.0))
    await asyncio.sleep(0.7)
    assert records(rdb, queue, "t.reminder", t) == []
    await wait_for(lambda: len(records(rdb, queue, "t.reminder", t)) == 2, timeout=5)
    recs = {r["data"]["kind"]: r["t"] - start for r in records(rdb, queue, "t.reminder", t)}
    assert 1.0 <= recs["eta"] <= 1.0 + LATE_SLACK, recs
    assert 1.5 <= recs["delay"] <= 1.5 + LATE_SLACK, recs
    await asyncio.sleep(0.5)
    assert len(records(rdb, queue, "t.reminder", t)) == 2


async def test_cancel_a_delayed_event(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="reminder.due", data={"tag": t})
    await bus.publish(event, delay=1.0)
    assert await bus.cancel(event.id) is True
    assert await bus.cancel(event.id) is False
    await asyncio.sleep(1.5)
    assert records(rdb, queue, "t.reminder", t) == []


async def test_event_without_handler_is_acked_and_counted(bus: Any, rdb: redis.Redis, queue: str) -> None:
    before = stats(rdb, queue).get("unmatched", 0)
    await bus.publish(Event(name="nobody.listens", data={}))
    await wait_for(lambda: stats(rdb, queue).get("unmatched", 0) == before + 1)


async def test_malformed_messages_are_rejected_and_the_worker_keeps_running(
    bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess
) -> None:
    publisher = ormevents.get_runtime().publisher
    before = stats(rdb, queue).get("rejected", 0)
    rdb.lpush(queue, "this is not a celery message")                        # undecodable envelope
    publisher.app.send_task("ormevents.dispatch", args=[{"name": "no id"}, None], queue=queue)  # bad event
    publisher.app.send_task("ormevents.run_handler", args=["junk"], queue=queue)        # bad args
    publisher.app.send_task("ormevents.no_such_task", args=[], queue=queue)             # unknown task
    await wait_for(lambda: stats(rdb, queue).get("rejected", 0) >= before + 2)
    t = tag()
    await bus.publish(Event(name="order.created", data={"tag": t}))
    await wait_for(lambda: records(rdb, queue, "t.sync", t))
    log = worker.log()
    assert "a Redis queue entry is not a kombu message" in log
    assert "dispatch got an invalid event" in log and "run_handler got malformed arguments" in log
    assert "Received unregistered task of type 'ormevents.no_such_task'" in log
    assert worker.process is not None and worker.process.poll() is None


async def test_unknown_handler_is_recorded_not_crashed(bus: Any, rdb: redis.Redis, queue: str) -> None:
    from ormevents.delivery.celery.sending import run_message

    publisher = ormevents.get_runtime().publisher
    event = Event(name="order.created", data={"tag": tag()})
    await asyncio.to_thread(publisher.sender.send, run_message(event.to_dict(), "gone.handler", 0, None))
    job = await wait_for(lambda: rdb.hget(f"{queue}:failed:jobs", f"{event.id}:gone.handler"))
    assert (json.loads(job)["error_type"], json.loads(job)["reason"]) == ("UnknownHandler", "unknown_handler")


async def test_chained_events_published_once_with_causation(bus: Any, rdb: redis.Redis, queue: str) -> None:
    from ormevents.delivery.celery.sending import run_message

    t = tag()
    parent = Event(name="signup.done", data={"tag": t})
    await bus.publish(parent)
    await wait_for(lambda: len(records(rdb, queue, "t.email", t)) == 2)
    emails = records(rdb, queue, "t.email", t)
    assert {r["metadata"]["causation_id"] for r in emails} == {str(parent.id)}
    assert sorted(r["data"]["to"] for r in emails) == ["a@x.io", "b@x.io"]
    child_ids = {r["event_id"] for r in emails}
    assert len(child_ids) == 2
    # A redelivered copy of the chain task neither re-runs the handler nor republishes.
    before = stats(rdb, queue).get("duplicates", 0)
    publisher = ormevents.get_runtime().publisher
    await asyncio.to_thread(publisher.sender.send, run_message(parent.to_dict(), "t.chain", 0, None))
    await wait_for(lambda: stats(rdb, queue).get("duplicates", 0) == before + 1)
    await asyncio.sleep(0.3)
    assert len(records(rdb, queue, "t.chain", t)) == 1
    assert len(records(rdb, queue, "t.email", t)) == 2
    assert set(json.loads(rdb.hget(f"{queue}:done:{parent.id}", "t.chain"))["published"]) == child_ids


async def test_async_mongo_client_from_worker_start_across_100_tasks(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    for n in range(100):
        await bus.publish(Event(name="mongo.ping", data={"tag": t, "n": n}))
    await wait_for(lambda: len(records(rdb, queue, "t.mongo", t)) == 100, timeout=60)
    recs = records(rdb, queue, "t.mongo", t)
    assert sorted(r["data"]["n"] for r in recs) == list(range(100))
    assert max(r["count"] for r in recs) == 100  # every insert landed, through the same clients
    assert len({r["pid"] for r in recs}) <= 2
    handler_jobs = [job_id for job_id in rdb.hkeys(f"{queue}:failed:jobs") if not job_id.startswith("malformed:")]
    assert stats(rdb, queue).get("failed", 0) == len(handler_jobs)    # parked malformed messages count as "rejected"
    assert not [k for k in rdb.hkeys(f"{queue}:failed:jobs") if "t.mongo" in k]


async def test_model_writes_reach_sync_and_async_handlers_with_the_diff(bus: Any, rdb: redis.Redis, queue: str) -> None:
    from ormevents import EventModel, EventModelConfig

    class DeliveryUser(EventModel):
        model_config = EventModelConfig(event_data=("tag",))  # the handlers record under it
        _collection = "delivery_users"
        tag: str
        status: str = "inactive"
        bio: str = "not sent with updates"

    t = tag()
    user = await DeliveryUser.create(tag=t)
    created = await wait_for(lambda: records(rdb, queue, "t.model_created_sync", t))
    assert created[0]["name"] == "delivery_user.created"
    assert created[0]["data"]["status"] == "inactive" and created[0]["data"]["id"] == {"$oid": str(user.id)}
    assert created[0]["changes"]["status"] == [None, "inactive"]
    await user.update(status="active")
    updated = await wait_for(lambda: records(rdb, queue, "t.model_updated_async", t))
    assert updated[0]["changes"] == {"status": ["inactive", "active"]}
    assert updated[0]["data"] == {"id": {"$oid": str(user.id)}, "status": "active", "tag": t}  # no bio
    await asyncio.sleep(0.3)
    assert len(records(rdb, queue, "t.model_created_sync", t)) == 1
    assert len(records(rdb, queue, "t.model_updated_async", t)) == 1
