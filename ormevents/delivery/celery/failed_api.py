"""The failed-job and event-status API of the Celery publisher (async; Redis calls on its threads).

:class:`FailedJobsMixin` gives :class:`~ormevents.delivery.celery.publisher.CeleryPublisher`
these methods; ``event_bus`` (:mod:`ormevents.bus`) forwards to them.
Filters (all optional, combined with AND): ``handler``, ``event_name``, ``model``,
``exception`` (dotted class name) and ``since`` (a datetime). See ``docs/failed-jobs.md``.

Example::

    page = await event_bus.get_failed_jobs(handler="billing.activate", limit=20)
    for job in page.items:
        print(job.id, job.error_type, job.attempts)
    await event_bus.retry_job(page.items[0].id)
    status = await event_bus.get_event_status(page.items[0].event_id)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...errors import JobNotFoundError
from ...jobs.records import FailedJob, FailedJobFilter, Page
from ...jobs.status import EventStatus, HandlerStatus

if TYPE_CHECKING:
    from ...jobs.redis_store import FailedJobStore
    from .requeue import Requeue


class FailedJobsMixin:
    """Failed jobs and event status for a publisher with ``redis``, ``sender``, ``settings``
    and ``_off_loop`` (see :class:`~ormevents.delivery.celery.publisher.CeleryPublisher`)."""

    redis: Any
    sender: Any
    settings: Any
    _requeue: Requeue | None = None

    if TYPE_CHECKING:
        async def _off_loop(self, func: Any, *args: Any, what: str) -> Any: ...  # the publisher's

    @property
    def requeue(self) -> Requeue:
        """Retry/remove operations (created on first use)."""
        if self._requeue is None:
            from ...jobs.redis_store import FailedJobStore
            from .requeue import Requeue

            store = FailedJobStore(self.redis, self.settings.queue_name, self.settings.failed_jobs)
            self._requeue = Requeue(store, self.sender, status_ttl=self.settings.status_ttl)
        return self._requeue

    @property
    def failed_store(self) -> FailedJobStore:
        """The :class:`~ormevents.jobs.redis_store.FailedJobStore` of this queue (sync)."""
        return self.requeue.store

    async def get_failed_jobs(self, handler: str | None = None, event_name: str | None = None,
                              model: str | None = None, exception: str | None = None,
                              since: datetime | None = None, limit: int = 50,
                              cursor: str | None = None) -> Page[FailedJob]:
        """One page of failed jobs matching the filters, newest first."""
        filters = FailedJobFilter(handler, event_name, model, exception, since)
        page: Page[FailedJob] = await self._off_loop(
            lambda: self.failed_store.page(filters, limit=limit, cursor=cursor), what="list failed jobs")
        return page

    async def get_failed_job(self, job_id: str) -> FailedJob:
        """The failed job ``job_id``; :class:`JobNotFoundError` if there is none."""
        job = await self._off_loop(self.failed_store.get, job_id, what=f"get failed job {job_id}")
        if job is None:
            raise JobNotFoundError(f"no failed job {job_id!r} in queue {self.settings.queue_name!r}")
        return job  # type: ignore[no-any-return]  # _off_loop returns Any

    async def count_failed(self, handler: str | None = None, event_name: str | None = None,
                           model: str | None = None, exception: str | None = None,
                           since: datetime | None = None) -> int:
        """How many failed jobs match the filters."""
        filters = FailedJobFilter(handler, event_name, model, exception, since)
        return int(await self._off_loop(self.failed_store.count, filters, what="count failed jobs"))

    async def retry_job(self, job_id: str) -> FailedJob:
        """Re-enqueue ``job_id`` (attempt count from 0); the record goes once the broker took it."""
        job: FailedJob = await self._off_loop(self.requeue.retry, job_id, what=f"retry failed job {job_id}")
        return job

    async def remove_job(self, job_id: str) -> None:
        """Delete ``job_id``; :class:`JobNotFoundError` if there is none."""
        await self._off_loop(self.requeue.remove, job_id, what=f"remove failed job {job_id}")

    async def retry_jobs(self, *, handler: str | None = None, event_name: str | None = None,
                         model: str | None = None, exception: str | None = None,
                         since: datetime | None = None, dry_run: bool = False) -> int:
        """Retry every matching job (``dry_run``: only count them); returns how many."""
        filters = FailedJobFilter(handler, event_name, model, exception, since)
        return await self._batches(self.requeue.retry_batch, filters, dry_run, "retry failed jobs")

    async def remove_jobs(self, *, handler: str | None = None, event_name: str | None = None,
                          model: str | None = None, exception: str | None = None,
                          since: datetime | None = None, dry_run: bool = False) -> int:
        """Remove every matching job (``dry_run``: only count them); returns how many."""
        filters = FailedJobFilter(handler, event_name, model, exception, since)
        return await self._batches(self.requeue.remove_batch, filters, dry_run, "remove failed jobs")

    async def get_event_status(self, event_id: uuid.UUID | str) -> EventStatus | None:
        """The event and each handler's state, or ``None`` if unknown (or expired)."""
        from ...jobs.status import read_status

        found: EventStatus | None = await self._off_loop(
            read_status, self.redis, self.settings.keys, str(event_id), what=f"status of {event_id}")
        return found

    async def get_handler_status(self, event_id: uuid.UUID | str, handler: str) -> HandlerStatus | None:
        """The state of ``handler`` on ``event_id``, or ``None``."""
        status = await self.get_event_status(event_id)
        return None if status is None else status.handlers.get(handler)

    async def _batches(self, step: Any, filters: FailedJobFilter, dry_run: bool, what: str) -> int:
        if dry_run:
            return int(await self._off_loop(self.failed_store.count, filters, what=what))
        total, cursor = await self._off_loop(step, filters, None, what=what)
        while cursor is not None:  # one bounded call per page keeps each under the timeout
            done, cursor = await self._off_loop(step, filters, cursor, what=what)
            total += done
        return int(total)
