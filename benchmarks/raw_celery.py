"""The raw-Celery baseline: a plain Celery app with two no-op tasks, configured like ormevents'.

Same settings as an ormevents worker (JSON only, late acks, rejected on worker loss,
prefetch 1, no results); the worker runs with the same pool (``prefork -c 2``) and flags.
Tasks do exactly what the benchmark handlers do (:mod:`benchmarks.tasks_common`).

The worker process reads the broker from ``BENCH_REDIS_URL``; the publishing side calls
:func:`configure`. Without either the app points at ``memory://``, never at a shared Redis.

    BENCH_REDIS_URL=redis://127.0.0.1:PORT/0 celery -A benchmarks.raw_celery worker -Q bench.raw
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from benchmarks import tasks_common

QUEUE = "bench.raw"
IDLE_QUEUE = "bench.idle"
"""A queue no worker consumes: for timing the publishing side alone."""

app = Celery("bench_raw", set_as_current=False)
app.conf.update(
    broker_url=os.environ.get("BENCH_REDIS_URL", "memory://"),
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_create_missing_queues=True,
    enable_utc=True,
)


@app.task(name="bench.noop")
def noop(run: str, payload: Any = None) -> None:
    """Count one run of ``run`` (``payload``: what a hand-rolled event would carry)."""
    tasks_common.count(run)


@app.task(name="bench.stamp")
def stamp(key: str, payload: Any = None) -> None:
    """Record this task's start time under ``key``."""
    tasks_common.stamp(key)


def configure(broker_url: str) -> Celery:
    """Point the publishing side of the app at ``broker_url`` (before its first send)."""
    app.conf.broker_url = broker_url
    return app
