"""A worker facing process death and hostile messages keeps its promises (real prefork worker).

* a handler that kills its pool process runs as many times as its policy allows, then becomes a
  failed job with reason ``worker_lost``; the worker keeps serving other events;
* a redelivered run leaves the gauges (queued, scheduled, running) where they belong;
* queue entries and messages the worker cannot use are parked as failed jobs with reason
  ``malformed_message``, without disturbing a run in progress;
* a retry policy carried by a message never makes the worker import anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from ormevents import Event, JobNotRetryableError
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.worker_process import WorkerProcess, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def queue() -> str:
    return f"h{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module", autouse=True)
def worker(queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    with running(WorkerProcess(queue, redis_uri)) as process:
        yield process


def gauges(rdb: redis.Redis, queue: str, handler: str) -> dict[str, int]:
    """The raw gauges of ``handler`` (negative drift shown as is)."""
    raw = rdb.hgetall(f"{queue}:gauges")
    return {state: int(raw.get(f"{state}|{handler}", 0)) for state in ("queued", "scheduled", "running")}


async def test_a_handler_that_kills_its_process_runs_its_attempts_then_is_parked(
        bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="poison.pill", data={"tag": t})
    await bus.publish(event)                                     # t.poison: max_retries=2, os._exit(1) every time
    job_id = f"{event.id}:t.poison"
    deadline = time.monotonic() + 60                             # a lost child is noticed within ~0-5 s here
    while not rdb.hexists(f"{queue}:failed:jobs", job_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)                                     # a redelivery after parking would show now
    runs = len(records(rdb, queue, "t.poison", t))
    parked = rdb.hget(f"{queue}:failed:jobs", job_id)
    assert runs == 3 and parked is not None, \
        f"runs of the poison handler: {runs} (policy: 3 attempts); failed job: {'yes' if parked else 'none'}"
    job = json.loads(parked)
    assert (job["reason"], job["error_type"], job["attempts"]) == ("worker_lost", "ormevents.WorkerLost", 3), job
    assert "died" in job["error_message"] and job["retry_policy"]["max_retries"] == 2
    status = await bus.get_handler_status(event.id, "t.poison")
    assert (status.state, status.attempts) == ("failed", 3)
    assert gauges(rdb, queue, "t.poison") == {"queued": 0, "scheduled": 0, "running": 0}
    after = Event(name="order.created", data={"tag": t})        # the worker still serves other events
    await bus.publish(after)
    await wait_for(lambda: records(rdb, queue, "t.sync", t), timeout=15)


async def test_a_run_redelivered_after_its_process_was_killed_leaves_the_gauges_level(
        bus: Any, rdb: redis.Redis, queue: str) -> None:
    t = tag()
    event = Event(name="crash.once", data={"tag": t})
    await bus.publish(event)
    first = await wait_for(lambda: records(rdb, queue, "t.crash_once", t))
    os.kill(first[0]["pid"], signal.SIGKILL)                     # the pool process dies mid-run (an OOM kill)
    await wait_for(lambda: rdb.hexists(f"{queue}:done:{event.id}", "t.crash_once"), timeout=30)
    await asyncio.sleep(0.5)
    status = await bus.get_handler_status(event.id, "t.crash_once")
    levels = gauges(rdb, queue, "t.crash_once")
    assert levels == {"queued": 0, "scheduled": 0, "running": 0}, \
        f"gauges after one redelivery: {levels} (the run finished: all should be 0)"
    assert status.state == "succeeded" and len(records(rdb, queue, "t.crash_once", t)) == 2


async def test_a_run_whose_whole_worker_was_killed_is_a_failed_attempt_on_the_next_worker(
        rdb: redis.Redis, queue: str, redis_uri: str) -> None:
    """An OOM kill of the whole worker: Redis hands the message out again after the visibility
    timeout (kombu restores it when the next worker starts); that worker counts the lost run."""
    from ormevents.delivery.celery.config import DeliverySettings
    from ormevents.delivery.celery.publisher import CeleryPublisher

    own = f"{queue}:killed"
    short = {"ORMEVENTS_VISIBILITY_TIMEOUT": "2"}
    first, second = WorkerProcess(own, redis_uri, extra_env=short), WorkerProcess(own, redis_uri, extra_env=short)
    publisher = CeleryPublisher(DeliverySettings(redis_url=redis_uri, queue_name=own))
    t = tag()
    event = Event(name="crash.once", data={"tag": t})
    try:
        await asyncio.to_thread(first.start)
        await publisher.publish(event)
        await wait_for(lambda: records(rdb, own, "t.crash_once", t))
        os.killpg(first.main_pid(), signal.SIGKILL)               # the worker and its pool, at once
        assert first.process is not None and first.process.wait(10) is not None
        await asyncio.sleep(2.5)                                   # past the visibility timeout
        await asyncio.to_thread(second.start)                      # restores the unacknowledged message
        await wait_for(lambda: rdb.hexists(f"{own}:done:{event.id}", "t.crash_once"), timeout=30)
        await asyncio.sleep(0.5)
        levels = gauges(rdb, own, "t.crash_once")
        status = json.loads(rdb.hget(f"{own}:status:{event.id}", "h|t.crash_once|attempts") or "0")
        assert levels == {"queued": 0, "scheduled": 0, "running": 0} and status == 2, \
            f"after the worker was killed: gauges {levels}, attempts {status} (expected all 0, 2 attempts)"
        assert len(records(rdb, own, "t.crash_once", t)) == 2
    finally:
        await publisher.close()
        first.cleanup()
        second.cleanup()


JUNK = [
    b'{"foo": 1}',                                               # JSON, not a kombu envelope
    b'[1, 2, 3]',
    b'not json at all',
    b'\xff\xfe not even text',
    b'{"body": "***", "headers": {}, "content-type": "application/json", "properties": '
    b'{"body_encoding": "base64", "delivery_tag": "t1", "delivery_info": {}}}',   # an envelope with a broken body
    b'{"body": "e30=", "headers": {}, "properties": {"body_encoding": "rot13", "delivery_tag": "t2"}}',  # unknown codec
    b'{"body": "e30=", "headers": {}, "properties": {"body_encoding": 5, "delivery_tag": "t3"}}',   # not a name
    b"[" * 100_000 + b"]" * 100_000,                             # JSON nested too deep for the decoder
]


async def test_malformed_messages_are_parked_without_harming_the_worker_or_a_running_handler(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess) -> None:
    t = tag()
    slow = Event(name="status.block", data={"tag": t, "sleep": 2})
    await bus.publish(slow)
    await wait_for(lambda: records(rdb, queue, "t.status_block", t))       # running, unacknowledged
    publisher = bus_publisher()
    before = set(rdb.hkeys(f"{queue}:failed:jobs"))
    for entry in JUNK:
        rdb.lpush(queue, entry)
    await asyncio.to_thread(publisher.app.send_task, "ormevents.run_handler", args=["junk"], queue=queue)
    await asyncio.to_thread(publisher.app.send_task, "ormevents.no_such_task", args=[1], queue=queue)
    await asyncio.sleep(4.0)                                                 # the slow run is over
    runs = len(records(rdb, queue, "t.status_block", t))
    parked = [json.loads(rdb.hget(f"{queue}:failed:jobs", job_id))
              for job_id in set(rdb.hkeys(f"{queue}:failed:jobs")) - before]
    malformed = [job for job in parked if job.get("reason") == "malformed_message"]
    alive = worker.process is not None and worker.process.poll() is None
    assert alive and runs == 1 and len(malformed) == len(JUNK) + 2, \
        f"worker alive: {alive}; runs of the handler running meanwhile: {runs} (expected 1); parked malformed " \
        f"messages: {len(malformed)} of {len(JUNK) + 2}; consumer restarts: {worker.log().count('Connection to broker lost')}"
    assert "Connection to broker lost" not in worker.log()
    assert {job["error_type"] for job in malformed} == {"ormevents.MalformedMessage"}
    raw = "\n".join(job["raw_message"] for job in malformed)
    assert '{"foo": 1}' in raw and "not json at all" in raw and "ormevents.no_such_task" in raw and "junk" in raw
    with pytest.raises(JobNotRetryableError, match="malformed message"):
        await bus.retry_job(malformed[0]["id"])                              # no event to run: read it, remove it
    after = Event(name="order.created", data={"tag": t})                    # still serving
    await bus.publish(after)
    await wait_for(lambda: records(rdb, queue, "t.sync", t))
    assert worker.process is not None and worker.process.poll() is None


def bus_publisher() -> Any:
    import ormevents

    return ormevents.get_runtime().publisher


async def test_a_retry_policy_in_a_message_is_ignored_and_imports_nothing(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess) -> None:
    from ormevents.delivery.celery.sending import run_message

    event = Event(name="job.linear", data={"tag": tag()})              # t.linear has no policy of its own
    hostile = {"max_retries": 1_000_000, "retry_on": ["tests.support.import_canary.CanaryError"]}
    await asyncio.to_thread(bus_publisher().sender.send, run_message(event.to_dict(), "t.linear", 0, hostile))
    job_id = f"{event.id}:t.linear"
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", job_id), timeout=15)
    imports = int(rdb.get(f"{queue}:canary:imported") or 0)
    job = json.loads(rdb.hget(f"{queue}:failed:jobs", job_id))
    assert imports == 0, f"imports of the module named in the message: {imports} (the worker must import none)"
    assert job["retry_policy"]["retry_on"] == ["builtins.Exception"] and job["attempts"] == 4, \
        f"attempts {job['attempts']} under policy {job['retry_policy']} (expected the worker's default: 4)"
