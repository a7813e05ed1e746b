"""Celery's soft time limit (``task_soft_time_limit`` through ``ORMEVENTS_CELERY_CONFIG``) ends a
hanging handler as a failed attempt: retried by its policy, then stored as a failed job. An
async handler's coroutine is cancelled, not left running behind the failure."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from ormevents import Event
from tests.integration.test_delivery import records, wait_for
from tests.integration.worker_process import WorkerProcess, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def queue() -> str:
    return f"tl{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module", autouse=True)
def worker(queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    settings = {"ORMEVENTS_CELERY_CONFIG": "tests.integration.soft_limit_config"}
    with running(WorkerProcess(queue, redis_uri, extra_env=settings)) as process:
        yield process


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_handler_over_the_soft_time_limit_becomes_a_failed_job(
    bus: Any, rdb: redis.Redis, queue: str, kind: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    event = Event(name=f"slow.{kind}", data={"tag": tag, "sleep": 3})
    await bus.publish(event)
    job_id = f"{event.id}:t.slow_{kind}"
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", job_id), timeout=10)
    job = await bus.get_failed_job(job_id)
    assert job.error_type == "billiard.exceptions.SoftTimeLimitExceeded" and job.attempts == 1
    status = await bus.get_handler_status(event.id, f"t.slow_{kind}")
    assert status is not None and status.state == "failed"
    await asyncio.sleep(3.0)                                   # past the handler's own sleep
    assert len(records(rdb, queue, f"t.slow_{kind}", tag)) == 1
    assert records(rdb, queue, f"t.slow_{kind}_done", tag) == []   # interrupted, never finished


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
async def test_a_soft_time_limit_during_the_bookkeeping_keeps_the_outcome(
    bus: Any, rdb: redis.Redis, queue: str, outcome: str
) -> None:
    """The handler ends at 0.6 s; Redis holds every client from ~0 s to ~2 s (CLIENT PAUSE), so
    recording the outcome waits, and the 1 s soft limit strikes while it does."""
    tag = uuid.uuid4().hex[:8]
    event = Event(name="slow.finish", data={"tag": tag, "fail": outcome == "failed"})
    await bus.publish(event)
    await wait_for(lambda: records(rdb, queue, "t.slow_finish", tag), interval=0.005)
    await asyncio.to_thread(rdb.execute_command, "CLIENT", "PAUSE", "2000", "ALL")

    def state() -> Any:
        return json.loads(rdb.hget(f"{queue}:status:{event.id}", "h|t.slow_finish|state") or "null")

    deadline = time.monotonic() + 8
    while state() not in ("succeeded", "failed") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    result = json.loads(rdb.hget(f"{queue}:done:{event.id}", "t.slow_finish") or "null")
    job = rdb.hget(f"{queue}:failed:jobs", f"{event.id}:t.slow_finish")
    running = int(rdb.hget(f"{queue}:gauges", "running|t.slow_finish") or 0)
    kept = {"succeeded": result == {"finished": tag}, "failed": job is not None}[outcome]
    assert state() == outcome and kept and running == 0, \
        f"after a soft time limit in the bookkeeping: status {state()!r}, result {result!r}, " \
        f"failed job {'stored' if job else 'none'}, running gauge {running} (expected {outcome}, kept, 0)"
