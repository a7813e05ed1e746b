"""Celery's soft time limit (``task_soft_time_limit`` through ``ORMEVENTS_CELERY_CONFIG``) ends a
hanging handler as a failed attempt: retried by its policy, then stored as a failed job. An
async handler's coroutine is cancelled, not left running behind the failure."""

from __future__ import annotations

import asyncio
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
