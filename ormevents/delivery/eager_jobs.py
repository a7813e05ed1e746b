"""The ``event_bus`` failed-job API of the eager publisher (see :mod:`ormevents.jobs.memory_store`).

Same methods, filters, pages and :class:`~ormevents.errors.JobNotFoundError` as the worker's
Redis store, so a user's test lists, retries and removes failed jobs as the application does.
Retrying runs the handler again at once, with a fresh attempt count (a job parked because the
handler's condition raised evaluates the condition first, as on a worker); retrying a job that was
retried already raises :class:`~ormevents.errors.JobAlreadyRetriedError`, as on a worker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import JobAlreadyRetriedError, JobNotFoundError
from ..events.event import Event
from ..jobs.memory_store import EagerFailedStore
from ..jobs.records import FailedJob, FailedJobFilter, Page

if TYPE_CHECKING:
    from ..handlers.registry import Handler


class EagerFailedJobsMixin:
    """The ``event_bus`` failed-job methods for :class:`~ormevents.delivery.eager.EagerPublisher`."""

    failed_store: EagerFailedStore

    if TYPE_CHECKING:
        async def _rerun(self, handler: Handler | None, name: str, event: Event, recheck: bool = False) -> None: ...
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
        await self._rerun(self._handler(job.handler), job.handler, Event.from_dict(job.event),
                          recheck=job.reason == "condition_error")
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
