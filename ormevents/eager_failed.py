"""Failed jobs in eager mode: the worker's failed-job store and its ``event_bus`` API, in memory.

:class:`~ormevents.testing.EagerPublisher` records a :class:`~ormevents.failed.FailedJob` (the
same record a worker stores in Redis) when a handler exhausts its retries, so a user's test can
list, retry and remove failed jobs through ``event_bus`` exactly as the application does:
``get_failed_jobs``, ``get_failed_job``, ``count_failed``, ``retry_job``, ``retry_jobs``,
``remove_job``, ``remove_jobs``, with the same filters, pages and :class:`JobNotFoundError`.

Retention keeps the newest ``max_count`` jobs; ``max_age_days`` is not applied (a test's
records never get that old). Retrying runs the handler again at once, with a fresh attempt
count; the record goes first, and a run that fails again stores a new one. Retrying a job that
was retried already raises :class:`JobAlreadyRetriedError`, as on a worker.

Example::

    await init(database=db, eager=True)
    await Order.create(total=5)                         # a handler fails for good
    page = await event_bus.get_failed_jobs(handler="shop.notify_carrier")
    await event_bus.retry_job(page.items[0].id)        # runs it again, now
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import InvalidFilterError, JobAlreadyRetriedError, JobNotFoundError
from .events import Event
from .failed import FailedJob, FailedJobFilter, FailedJobRetention, Page, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from .handlers import Handler

EAGER_QUEUE = "eager"
"""The ``queue`` of failed jobs recorded in eager mode."""


def failed_job(event: Event, handler: str, error_type: str, message: str, trace: str, attempts: int,
               retry_policy: dict[str, Any] | None = None) -> FailedJob:
    """The record of ``handler`` failing on ``event`` (the fields a worker would store)."""
    now = datetime.now(UTC)
    return FailedJob(
        id=FailedJob.make_id(str(event.id), handler), queue=EAGER_QUEUE, handler=handler, event=event.to_dict(),
        event_id=str(event.id), event_name=event.name, model=event.model, error_type=error_type,
        error_message=message, traceback=trace[-20000:], attempts=attempts, retry_policy=retry_policy,
        first_attempt_at=now, first_failed_at=now, failed_at=now, worker=f"{socket.gethostname()}:eager",
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


class EagerFailedJobsMixin:
    """The ``event_bus`` failed-job methods for :class:`~ormevents.testing.EagerPublisher`."""

    failed_store: EagerFailedStore

    if TYPE_CHECKING:
        async def _rerun(self, handler: Handler | None, name: str, event: Event) -> None: ...
        async def _catch_up(self) -> None: ...
        def _handler(self, name: str) -> Handler | None: ...

    async def get_failed_jobs(self, handler: str | None = None, event_name: str | None = None,
                              model: str | None = None, exception: str | None = None,
                              since: datetime | None = None, limit: int = 50,
                              cursor: str | None = None) -> Page[FailedJob]:
        """One page of failed jobs matching the filters, newest first."""
        return self.failed_store.page(FailedJobFilter(handler, event_name, model, exception, since), limit, cursor)

    async def get_failed_job(self, job_id: str) -> FailedJob:
        """The failed job ``job_id``; :class:`JobNotFoundError` if there is none."""
        job = self.failed_store.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no failed job {job_id!r} in eager mode")
        return job

    async def count_failed(self, handler: str | None = None, event_name: str | None = None,
                           model: str | None = None, exception: str | None = None,
                           since: datetime | None = None) -> int:
        """How many failed jobs match the filters."""
        return len(self.failed_store.matching(FailedJobFilter(handler, event_name, model, exception, since)))

    async def retry_job(self, job_id: str) -> FailedJob:
        """Run the job's handler again now (fresh attempts); returns the removed record.

        :class:`JobAlreadyRetriedError` if it was retried already (and has not failed again),
        :class:`JobNotFoundError` if there is no such job.
        """
        if self.failed_store.get(job_id) is None and job_id in self.failed_store.retried:
            when = self.failed_store.retried[job_id].isoformat(timespec="seconds")
            raise JobAlreadyRetriedError(f"failed job {job_id!r} was already retried at {when} in eager mode; nothing to do")
        job = self.failed_store.remove(job_id)
        self.failed_store.retried[job_id] = datetime.now(UTC)
        await self._rerun(self._handler(job.handler), job.handler, Event.from_dict(job.event))
        await self._catch_up()
        return job

    async def remove_job(self, job_id: str) -> None:
        """Delete ``job_id``; :class:`JobNotFoundError` if there is none."""
        self.failed_store.remove(job_id)

    async def retry_jobs(self, *, dry_run: bool = False, **filters: Any) -> int:
        """Retry every job matching ``filters`` (``dry_run``: only count them); returns how many."""
        jobs = self.failed_store.matching(FailedJobFilter(**filters))
        if not dry_run:
            for job in jobs:
                await self.retry_job(job.id)
        return len(jobs)

    async def remove_jobs(self, *, dry_run: bool = False, **filters: Any) -> int:
        """Remove every job matching ``filters`` (``dry_run``: only count them); returns how many."""
        jobs = self.failed_store.matching(FailedJobFilter(**filters))
        if not dry_run:
            for job in jobs:
                self.failed_store.remove(job.id)
        return len(jobs)
