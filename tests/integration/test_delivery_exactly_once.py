"""Never apply a handler's effect twice (issue 12, worker side), with a real prefork worker.

* an event published twice, and a copy of a run message handed out while its run is in
  progress, run the handler once (the run's lease; the copy waits in the schedule);
* a pool process killed mid-run is taken over at once, without waiting for its lease;
* handlers taking a MongoDB session commit their effect exactly once (the inbox), also when
  Redis lost the completion, and a failed attempt leaves nothing behind;
* a worker with such a handler and no MongoDB refuses to start;
* a retried failed job whose handler completed meanwhile is skipped;
* a pickle-serialized message is refused and parked, never deserialized.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ormevents import Event
from ormevents.delivery.celery.run_ledger import dispatch_run_id
from ormevents.delivery.celery.sending import run_message
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.worker_process import WorkerProcess, running

pytestmark = pytest.mark.integration

IMPORTS = "tests.integration.delivery_handlers,tests.integration.inbox_handlers"


@pytest.fixture(scope="module")
def queue() -> str:
    return f"x{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module")
def database_name() -> str:
    return f"inbox_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", autouse=True)
def worker(queue: str, redis_uri: str, mongo_uri: str, database_name: str) -> Iterator[WorkerProcess]:
    env = {"ORMEVENTS_IMPORTS": IMPORTS, "ORMEVENTS_MONGO_URL": mongo_uri, "ORMEVENTS_DATABASE": database_name,
           "ORMEVENTS_RUN_LEASE": "2"}
    with running(WorkerProcess(queue, redis_uri, extra_env=env)) as process:
        yield process


def publisher() -> Any:
    import ormevents

    return ormevents.get_runtime().publisher


async def applied(pymongo_client: Any, database_name: str, event: Event, kind: str) -> int:
    found = await pymongo_client[database_name]["effects"].find_one({"_id": f"{event.id}:{kind}"})
    return int(found["applied"]) if found else 0


async def test_an_event_published_twice_runs_its_handler_once(bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="status.block", data={"tag": t, "sleep": 1.5})
    await bus.publish(event)
    await wait_for(lambda: records(rdb, queue, "t.status_block", t))     # the first run is under way
    await bus.publish(event)                                               # the relay published it again
    await asyncio.sleep(2.5)
    runs = len(records(rdb, queue, "t.status_block", t))
    assert runs == 1, f"runs of one handler for an event published twice: {runs} (expected 1)"
    assert rdb.hget(f"{queue}:done:{event.id}", "t.status_block") is not None


async def test_a_copy_of_a_running_message_waits_for_the_lease_instead_of_running(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess) -> None:
    t = tag()
    event = Event(name="status.block", data={"tag": t, "sleep": 3})
    await bus.publish(event)
    await wait_for(lambda: records(rdb, queue, "t.status_block", t))
    copy = run_message(event.to_dict(), "t.status_block", 0, None, time.time(), run_id=dispatch_run_id("t.status_block"))
    for _ in range(2):                                                      # kombu handed the message out again, twice
        await asyncio.to_thread(publisher().sender.send, copy)
    await wait_for(lambda: worker.log().count("is already running on event " + str(event.id)) == 2, timeout=10)
    waiting = [m for m in rdb.zrange(f"{queue}:schedule", 0, -1) if m.startswith(f"recheck:{event.id}:")]
    assert len(waiting) == 1, f"schedule entries of the two copies: {waiting} (copies of one message wait as one)"
    await wait_for(lambda: rdb.hget(f"{queue}:done:{event.id}", "t.status_block"), timeout=15)
    await asyncio.sleep(2.5)                                                # the copy comes back after the lease
    runs = len(records(rdb, queue, "t.status_block", t))
    skipped = f"handler t.status_block already recorded its outcome for event {event.id}" in worker.log()
    assert runs == 1 and skipped, \
        f"runs while a copy of the message was handed out: {runs} (expected 1); copy skipped at last: {skipped}"
    assert rdb.zscore(f"{queue}:schedule", f"recheck:{event.id}:t.status_block:t.status_block@0") is None


async def test_a_killed_pool_process_is_taken_over_without_waiting_for_its_lease(
        rdb: redis.Redis, queue: str, redis_uri: str) -> None:
    from ormevents.delivery.celery.config import DeliverySettings
    from ormevents.delivery.celery.publisher import CeleryPublisher

    own = f"{queue}:takeover"
    env = {"ORMEVENTS_RUN_LEASE": "300"}                                   # waiting for it would take 5 minutes
    publisher = CeleryPublisher(DeliverySettings(redis_url=redis_uri, queue_name=own))
    event = Event(name="crash.once", data={"tag": tag()})
    with running(WorkerProcess(own, redis_uri, extra_env=env)):
        await publisher.publish(event)
        first = await wait_for(lambda: records(rdb, own, "t.crash_once", event.data["tag"]))
        killed = time.monotonic()
        os.kill(first[0]["pid"], signal.SIGKILL)
        await wait_for(lambda: rdb.hexists(f"{own}:done:{event.id}", "t.crash_once"), timeout=60)
        took = time.monotonic() - killed
    await publisher.close()
    print(f"\nkilled pool process taken over and the run completed {took:.1f} s later (lease 300 s)")
    assert len(records(rdb, own, "t.crash_once", event.data["tag"])) == 2


async def test_a_session_handler_applies_its_effect_once_even_when_redis_lost_the_completion(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess, pymongo_client: Any, database_name: str) -> None:
    t = tag()
    event = Event(name="inbox.credit", data={"tag": t, "amount": 7})
    await bus.publish(event)
    done = f"{queue}:done:{event.id}"
    await wait_for(lambda: rdb.hlen(done) == 2, timeout=15)
    first = rdb.hgetall(done)
    rdb.delete(done, f"{queue}:runs:{event.id}")                           # Redis lost the completions
    for name in ("t.inbox_async", "t.inbox_sync"):                        # ... and the runs are delivered again
        await asyncio.to_thread(publisher().sender.send, run_message(event.to_dict(), name, 0, None, time.time()))
    await wait_for(lambda: rdb.hlen(done) == 2, timeout=15)
    effects = {kind: await applied(pymongo_client, database_name, event, kind) for kind in ("async", "sync")}
    runs = {name: len(records(rdb, queue, name, t)) for name in ("t.inbox_async", "t.inbox_sync")}
    assert effects == {"async": 1, "sync": 1} and runs == {"t.inbox_async": 1, "t.inbox_sync": 1}, \
        f"effects applied per handler: {effects}; handler calls: {runs} (a redelivery must apply nothing)"
    assert rdb.hgetall(done) == first, "the redelivery must record the first run's results"
    assert worker.log().count(f"had already applied its effect on event {event.id}") == 2
    record = await pymongo_client[database_name]["_oe_inbox"].find_one({"_id": event.idempotency_key("t.inbox_async")})
    assert record is not None and json.loads(record["result"])["value"] == {"credited": 7}


async def test_a_failed_attempt_of_a_session_handler_leaves_nothing_and_its_retry_applies_once(
        bus: Any, rdb: redis.Redis, queue: str, pymongo_client: Any, database_name: str) -> None:
    t = tag()
    event = Event(name="inbox.flaky", data={"tag": t})
    await bus.publish(event)
    await wait_for(lambda: rdb.hexists(f"{queue}:done:{event.id}", "t.inbox_flaky"), timeout=15)
    calls, effect = len(records(rdb, queue, "t.inbox_flaky", t)), await applied(pymongo_client, database_name, event, "flaky")
    assert (calls, effect) == (2, 1), f"calls: {calls} (1 failed + 1 retry), effect applied: {effect} time(s) (expected 1)"


def test_a_worker_with_a_session_handler_and_no_mongodb_refuses_to_start(queue: str, redis_uri: str) -> None:
    process = WorkerProcess(f"{queue}:nomongo", redis_uri, extra_env={"ORMEVENTS_IMPORTS": IMPORTS})
    try:
        with pytest.raises(RuntimeError, match="worker exited with 1") as info:
            process.start()
    finally:
        process.cleanup()
    message = str(info.value)
    assert "Unrecoverable error: ConfigurationError" in message and "ORMEVENTS_MONGO_URL" in message, message[-2000:]
    assert "t.inbox_async" in message


def test_a_completion_whose_lease_was_taken_over_is_reported_as_fenced(
        redis_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from ormevents.delivery.celery.config import DeliverySettings
    from ormevents.delivery.celery.worker import WorkerDelivery
    from ormevents.handlers import HandlerRegistry, event_handler

    reg, settings = HandlerRegistry(), DeliverySettings(redis_url=redis_uri, queue_name=f"fe{tag()}")
    client = redis.Redis.from_url(redis_uri)

    @event_handler("a.b", name="usurped", registry=reg)
    def usurped(event: Event) -> str:            # meanwhile its lease lapsed and another run took it
        client.set(settings.keys.lease(str(event.id), "usurped"), "elsewhere:1:0123456789ab")
        return "done"

    delivery = WorkerDelivery(settings, reg, app=None)  # type: ignore[arg-type]  # run() sends nothing here
    event = Event(name="a.b")
    with caplog.at_level(logging.INFO, logger="ormevents.delivery.celery.worker"):
        assert delivery.run((event.to_dict(), "usurped", 0, None)) == "done"
    fenced = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "fenced" in r.getMessage()]
    stats = {k.decode(): int(v) for k, v in client.hgetall(settings.keys.stats).items()}
    assert len(fenced) == 1 and stats.get("fenced") == 1, f"fenced warnings: {fenced}; counters: {stats}"
    assert "elsewhere:1:0123456789ab" in fenced[0] and "may have happened twice" in fenced[0]
    client.close()
    delivery.redis.close()


def test_a_session_handler_run_without_mongodb_is_a_failed_job_naming_the_variables(redis_uri: str) -> None:
    from ormevents.delivery.celery.config import DeliverySettings
    from ormevents.delivery.celery.worker import WorkerDelivery
    from ormevents.errors import ConfigurationError
    from ormevents.handlers import HandlerRegistry, event_handler

    reg = HandlerRegistry()

    @event_handler("a.b", name="needs.session", registry=reg)
    async def needs(event: Event, session: Any) -> None: ...

    delivery = WorkerDelivery(DeliverySettings(redis_url=redis_uri, queue_name=f"ns{tag()}"), reg, app=None)  # type: ignore[arg-type]  # run() sends nothing here
    with pytest.raises(ConfigurationError, match="needs.session take a MongoDB session"):
        delivery.check_startup()
    event = Event(name="a.b")
    assert delivery.run((event.to_dict(), "needs.session", 0, None)) is None
    job = delivery.store.get(f"{event.id}:needs.session")
    assert job is not None and job.error_type == "ormevents.errors.ConfigurationError", job
    assert "ORMEVENTS_MONGO_URL" in job.error_message and "ORMEVENTS_DATABASE" in job.error_message
    delivery.redis.close()


async def test_a_retried_failed_job_whose_handler_completed_meanwhile_is_skipped(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess) -> None:
    t = tag()
    event = Event(name="job.switch", data={"tag": t})                      # t.switch fails until switched on
    await bus.publish(event)
    job_id = f"{event.id}:t.switch"
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", job_id), timeout=15)
    calls = len(records(rdb, queue, "t.switch", t))
    rdb.hset(f"{queue}:done:{event.id}", "t.switch", '"completed by another run"')
    rdb.set(f"{queue}:switch:{t}", 1)
    await bus.retry_job(job_id)
    await wait_for(lambda: f"handler t.switch already completed event {event.id}" in worker.log(), timeout=15)
    again = len(records(rdb, queue, "t.switch", t)) - calls
    assert again == 0, f"runs of a handler that had completed, after its failed job was retried: {again} (expected 0)"


async def test_a_pickle_message_is_refused_and_parked_never_deserialized(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess) -> None:
    from celery import Celery

    canary = Path(tempfile.gettempdir()) / f"ormevents-pickle-canary-{tag()}"
    app = Celery("attacker", broker=worker.env["ORMEVENTS_REDIS_URL"])
    before = set(rdb.hkeys(f"{queue}:failed:jobs"))
    await asyncio.to_thread(app.send_task, "ormevents.dispatch", args=[Canary(str(canary)), None], queue=queue,
                            serializer="pickle")
    app.close()
    await wait_for(lambda: set(rdb.hkeys(f"{queue}:failed:jobs")) - before, timeout=15)
    parked = [json.loads(rdb.hget(f"{queue}:failed:jobs", job_id)) for job_id in set(rdb.hkeys(f"{queue}:failed:jobs")) - before]
    await asyncio.sleep(0.5)
    assert not canary.exists(), "the worker unpickled the message: the canary file was created"
    assert [job["reason"] for job in parked] == ["malformed_message"], parked
    assert "application/x-python-serialize" in parked[0]["raw_message"] and "ContentDisallowed" in parked[0]["error_message"]
    assert "Refusing to deserialize untrusted content of type pickle" in worker.log()
    after = Event(name="order.created", data={"tag": tag()})               # still serving
    await bus.publish(after)
    await wait_for(lambda: records(rdb, queue, "t.sync", after.data["tag"]), timeout=15)


class Canary:
    """Unpickling this creates the canary file (what a malicious pickle would do instead)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))
