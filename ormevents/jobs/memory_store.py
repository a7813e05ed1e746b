"""Failed jobs in memory: the eager publisher's store (same records as the worker's Redis store).

:class:`~ormevents.delivery.eager.EagerPublisher` records a :class:`~ormevents.jobs.records.FailedJob`
(the same record a worker stores in Redis) when a handler exhausts its retries; its ``event_bus``
API (:mod:`ormevents.delivery.eager_jobs`) lists, retries and removes them with the same filters,
pages and :class:`~ormevents.errors.JobNotFoundError`.

Retention keeps the newest ``max_count`` jobs; ``max_age_days`` is not applied (a test's
records never get that old). Retrying runs the handler again at once, with a fresh attempt
count; the record goes first, and a run that fails again stores a new one.

Example::

    await init(database=db, eager=True)
    await Order.create(total=5)                         # a handler fails for good
    page = await event_bus.get_failed_jobs(handler="shop.notify_carrier")
    await event_bus.retry_job(page.items[0].id)        # runs it again, now
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidFilterError, JobNotFoundError
from ..events.event import Event
from .records import (
    FailedJob,
    FailedJobFilter,
    FailedJobRetention,
    FailureReason,
    Page,
    decode_cursor,
    encode_cursor,
)

EAGER_QUEUE = "eager"
"""The ``queue`` of failed jobs recorded in eager mode."""


def failed_job(event: Event, handler: str, error_type: str, message: str, trace: str, attempts: int,
               retry_policy: dict[str, Any] | None = None, reason: FailureReason | None = None) -> FailedJob:
    """The record of ``handler`` failing on ``event`` (the fields a worker would store; ``reason``
    ``None``: told by ``error_type``, see :class:`FailedJob`)."""
    now = datetime.now(UTC)
    return FailedJob(
        id=FailedJob.make_id(str(event.id), handler), queue=EAGER_QUEUE, handler=handler, event=event.to_dict(),
        event_id=str(event.id), event_name=event.name, model=event.model, error_type=error_type,
        error_message=message, traceback=trace[-20000:], attempts=attempts, retry_policy=retry_policy,
        first_attempt_at=now, first_failed_at=now, failed_at=now, worker=f"{socket.gethostname()}:eager",
        **({"reason": reason} if reason else {}),
    )


class EagerFailedStore:
    """Failed jobs by id, newest last, with the retention's ``max_count``."""

    def __init__(self, retention: FailedJobRetention | None = None) -> None:
        self.retention = retention or FailedJobRetention()
        self._jobs: dict[str, FailedJob] = {}
        self.retried: dict[str, datetime] = {}  # job id -> when it was retried (as a worker's "already retried")
        self.evicted = 0

    def record(self, job: FailedJob) -> None:
        """Store ``job`` (replacing one with the same id) and evict the oldest beyond ``max_count``."""
        self._jobs.pop(job.id, None)
        self._jobs[job.id] = job
        while len(self._jobs) > self.retention.max_count:
            del self._jobs[next(iter(self._jobs))]
            self.evicted += 1

    def get(self, job_id: str) -> FailedJob | None:
        """The job ``job_id``, or ``None``."""
        return self._jobs.get(job_id)

    def remove(self, job_id: str) -> FailedJob:
        """Delete and return ``job_id``; :class:`JobNotFoundError` if there is none."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            raise JobNotFoundError(f"no failed job {job_id!r} in eager mode")
        return job

    def matching(self, filters: FailedJobFilter) -> list[FailedJob]:
        """Every job passing ``filters``, newest first (ties by id, as the Redis indexes)."""
        found = [job for job in self._jobs.values() if filters.matches(job)]
        return sorted(found, key=lambda job: (job.failed_at.timestamp(), job.id), reverse=True)

    def page(self, filters: FailedJobFilter, limit: int, cursor: str | None) -> Page[FailedJob]:
        """One page of :meth:`matching`, continuing after ``cursor``."""
        if limit < 1:
            raise InvalidFilterError(f"limit must be at least 1, got {limit}")
        jobs = self.matching(filters)
        if cursor is not None:
            after = decode_cursor(cursor)
            jobs = [job for job in jobs if (job.failed_at.timestamp(), job.id) < after]
        items = jobs[:limit]
        more = len(jobs) > limit
        return Page(items, encode_cursor(items[-1].failed_at.timestamp(), items[-1].id) if more else None)
