"""A worker facing process death and hostile messages keeps its promises (real prefork worker).

* a handler that kills its pool process runs as many times as its policy allows, then becomes a
  failed job with reason ``worker_lost``; the worker keeps serving other events;
* a redelivered run leaves the gauges (queued, scheduled, running) where they belong.
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

from ormevents import Event
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
    from ormevents.bus import CeleryPublisher
    from ormevents.celery.config import DeliverySettings

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
