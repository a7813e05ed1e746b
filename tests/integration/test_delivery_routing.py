"""Per-handler queue routing: ``@event_handler(..., queue=...)`` with real workers on Redis.

The handlers are ``t.routed`` (queue ``<queue>:slow``) and ``t.unrouted`` (the event queue) in
:mod:`tests.integration.delivery_handlers`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import Event
from ormevents.delivery.celery.sending import run_message
from tests.integration.test_delivery import records, wait_for
from tests.integration.worker_process import WorkerProcess, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def queue() -> str:
    return f"r{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module", autouse=True)
def main_worker(queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    """Consumes only the event queue: dispatches, runs unrouted handlers, polls the schedule."""
    with running(WorkerProcess(queue, redis_uri)) as process:
        yield process


@pytest.fixture(scope="module")
def slow_worker(queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    """Consumes only ``<queue>:slow``; started by the tests that need it."""
    process = WorkerProcess(queue, redis_uri, consume=[f"{queue}:slow"], concurrency=1)
    try:
        yield process
    finally:
        process.cleanup()


def ran_in(worker: WorkerProcess, recs: list[dict[str, Any]]) -> bool:
    """True if every record came from ``worker``'s pool (its children's pids)."""
    children = {int(p) for p in open(f"/proc/{worker.main_pid()}/task/{worker.main_pid()}/children").read().split()}
    return bool(recs) and all(r["pid"] in children for r in recs)


async def test_a_routed_handler_waits_for_a_worker_on_its_queue(
    bus: Any, rdb: redis.Redis, queue: str, main_worker: WorkerProcess, slow_worker: WorkerProcess
) -> None:
    tag = uuid.uuid4().hex[:8]
    await bus.publish(Event(name="routed.job", data={"tag": tag, "fail_times": 1}))
    await wait_for(lambda: records(rdb, queue, "t.unrouted", tag))
    await wait_for(lambda: rdb.llen(f"{queue}:slow") == 1)   # the run_handler message waits on its queue
    await asyncio.sleep(0.3)
    assert records(rdb, queue, "t.routed", tag) == []        # the event-queue worker never takes it
    assert ran_in(main_worker, records(rdb, queue, "t.unrouted", tag))

    await asyncio.to_thread(slow_worker.start)
    await wait_for(lambda: len(records(rdb, queue, "t.routed", tag)) == 2, timeout=15)
    routed = records(rdb, queue, "t.routed", tag)
    assert ran_in(slow_worker, routed)                        # first run and its retry, both on <queue>:slow
    event_id = routed[0]["event_id"]  # the handler records before it returns: its completion follows
    await wait_for(lambda: rdb.hget(f"{queue}:status:{event_id}", "h|t.routed|state") == '"succeeded"')
    status = await bus.get_handler_status(event_id, "t.routed")
    assert status.state == "succeeded" and status.attempts == 2


async def test_a_failed_routed_job_is_retried_on_its_queue(
    bus: Any, rdb: redis.Redis, queue: str, slow_worker: WorkerProcess
) -> None:
    if slow_worker.process is None:
        await asyncio.to_thread(slow_worker.start)
    tag = uuid.uuid4().hex[:8]
    event = Event(name="routed.job", data={"tag": tag, "needs_switch": True})
    await bus.publish(event)
    job_id = f"{event.id}:t.routed"
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", job_id), timeout=15)
    job = await bus.get_failed_job(job_id)
    assert job.handler_queue == f"{queue}:slow" and job.attempts == 4
    rdb.set(f"{queue}:switch:{tag}", 1)
    await bus.retry_job(job_id)
    await wait_for(lambda: len(records(rdb, queue, "t.routed", tag)) == 5, timeout=15)
    assert ran_in(slow_worker, records(rdb, queue, "t.routed", tag))
    await wait_for(lambda: not rdb.hexists(f"{queue}:failed:jobs", job_id))


async def test_an_unknown_routed_handler_keeps_its_queue_in_the_failed_job(
    bus: Any, rdb: redis.Redis, queue: str, slow_worker: WorkerProcess
) -> None:
    """A worker on the handler's queue that lacks the handler (a deploy in progress) records
    the queue, so ``failed retry`` sends the run back there, not to the event queue."""
    if slow_worker.process is None:
        await asyncio.to_thread(slow_worker.start)
    event = Event(name="routed.job", data={"tag": uuid.uuid4().hex[:8]})
    sender = ormevents.get_runtime().publisher.sender  # type: ignore[attr-defined]  # CeleryPublisher
    await asyncio.to_thread(sender.send, run_message(event.to_dict(), "t.ghost", 0, None, queue=f"{queue}:slow"))
    job_id = f"{event.id}:t.ghost"
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", job_id), timeout=15)
    job = await bus.get_failed_job(job_id)
    assert (job.error_type, job.handler_queue) == ("UnknownHandler", f"{queue}:slow")
