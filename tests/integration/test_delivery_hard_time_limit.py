"""Celery's hard time limit (``task_time_limit``) kills the pool process running a handler. The
run is not dropped: the message comes back, the run counts as a lost attempt, it is retried by
its policy and then parked as a failed job with reason ``worker_lost``."""

from __future__ import annotations

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
    return f"hl{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module", autouse=True)
def worker(queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    settings = {"ORMEVENTS_CELERY_CONFIG": "tests.integration.hard_limit_config"}
    with running(WorkerProcess(queue, redis_uri, extra_env=settings)) as process:
        yield process


async def test_a_handler_killed_by_the_hard_time_limit_is_retried_then_parked(bus: Any, rdb: redis.Redis,
                                                                             queue: str) -> None:
    tag = uuid.uuid4().hex[:8]
    event = Event(name="hang.hard", data={"tag": tag, "sleep": 30})
    await bus.publish(event)
    job_id = f"{event.id}:t.hang_hard"
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", job_id), timeout=30)
    job = await bus.get_failed_job(job_id)
    runs = len(records(rdb, queue, "t.hang_hard", tag))
    status = await bus.get_handler_status(event.id, "t.hang_hard")
    assert (job.reason, job.attempts, runs) == ("worker_lost", 2, 2), \
        f"killed by the hard time limit: reason {job.reason}, attempts {job.attempts}, runs {runs} " \
        "(expected worker_lost after the policy's 2 attempts)"
    assert status is not None and status.state == "failed"
