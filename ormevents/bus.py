"""``event_bus``: the application's handle on delivery, whatever publisher ``init()`` chose.

It holds no state of its own: every call goes to the current runtime's publisher, so after a
new ``init()`` it uses the new one. Publishing and cancelling work with every publisher;
failed jobs work with the Celery and the eager publisher, event status with Celery only.

Example::

    from ormevents import Event, event_bus

    await event_bus.publish(Event(name="user.created", data={"email": "a@x.io"}))
    event = Event(name="user.reminder", data={})
    await event_bus.publish(event, delay=3600)
    await event_bus.cancel(event.id)        # True: it was still waiting
    summary = await event_bus.replay(handler="audit.order", model="order", since=datetime(2026, 11, 1))
    page = await event_bus.get_failed_jobs(handler="billing.activate", limit=20)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, UnknownModelError
from .events.event import Event
from .jobs.records import FailedJob, Page
from .jobs.status import EventStatus, HandlerStatus
from .runtime import get_runtime

if TYPE_CHECKING:
    from .delivery.outbox.history import HistoryEntry


def _api(name: str) -> Any:
    publisher = get_runtime().publisher
    method = getattr(publisher, name, None)
    if method is None:
        raise ConfigurationError(
            f"{type(publisher).__name__} has no {name}(): failed jobs and event status need init(redis_uri=...) "
            "(eager mode keeps failed jobs, not event status)"
        )
    return method


class FailedJobsFacade:
    """``event_bus``'s failed-job and status methods (see :class:`~ormevents.delivery.celery.failed_api.FailedJobsMixin`)."""

    async def get_failed_jobs(self, handler: str | None = None, event_name: str | None = None,
                              model: str | None = None, exception: str | None = None,
                              since: datetime | None = None, limit: int = 50,
                              cursor: str | None = None) -> Page[FailedJob]:
        """One page of failed jobs matching the filters, newest first."""
        page: Page[FailedJob] = await _api("get_failed_jobs")(handler, event_name, model, exception, since, limit, cursor)
        return page

    async def get_failed_job(self, job_id: str) -> FailedJob:
        """The failed job ``job_id``; :class:`JobNotFoundError` if there is none."""
        job: FailedJob = await _api("get_failed_job")(job_id)
        return job

    async def count_failed(self, handler: str | None = None, event_name: str | None = None,
                           model: str | None = None, exception: str | None = None,
                           since: datetime | None = None) -> int:
        """How many failed jobs match the filters."""
        return int(await _api("count_failed")(handler, event_name, model, exception, since))

    async def retry_job(self, job_id: str) -> FailedJob:
        """Re-enqueue ``job_id``; :class:`JobNotFoundError` if there is none."""
        job: FailedJob = await _api("retry_job")(job_id)
        return job

    async def remove_job(self, job_id: str) -> None:
        """Delete ``job_id``; :class:`JobNotFoundError` if there is none."""
        await _api("remove_job")(job_id)

    async def retry_jobs(self, **filters: Any) -> int:
        """Retry every job matching ``filters`` (and ``dry_run=``); returns how many."""
        return int(await _api("retry_jobs")(**filters))

    async def remove_jobs(self, **filters: Any) -> int:
        """Remove every job matching ``filters`` (and ``dry_run=``); returns how many."""
        return int(await _api("remove_jobs")(**filters))

    async def get_event_status(self, event_id: uuid.UUID | str) -> EventStatus | None:
        """The event and each handler's state, or ``None`` if unknown (or expired)."""
        status: EventStatus | None = await _api("get_event_status")(event_id)
        return status

    async def get_handler_status(self, event_id: uuid.UUID | str, handler: str) -> HandlerStatus | None:
        """The state of ``handler`` on ``event_id``, or ``None``."""
        status: HandlerStatus | None = await _api("get_handler_status")(event_id, handler)
        return status


class EventBus(FailedJobsFacade):
    """Facade over the current runtime's publisher (``from ormevents import event_bus``).

    Holds no state of its own: after ``init()`` it uses the new runtime's publisher. Failed
    jobs and event status: see :class:`FailedJobsFacade`.
    """

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        """Publish ``event`` through the runtime's publisher (see :meth:`~ormevents.delivery.celery.publisher.CeleryPublisher.publish`)."""
        await get_runtime().publisher.publish(event, delay=delay, eta=eta)

    async def publish_many(self, events: list[Event]) -> int:
        """Publish ``events`` in one step where the publisher can (one Lua script on a Redis
        broker), else one by one; returns how many were handed over."""
        publisher = get_runtime().publisher
        many = getattr(publisher, "publish_many", None)
        if many is not None:
            return int(await many(events))
        for event in events:
            await publisher.publish(event)
        return len(events)

    async def replay(self, *, handler: str, model: Any, since: datetime | None = None, until: datetime | None = None,
                     where: Callable[[HistoryEntry], bool] | None = None, force: bool = False, dry_run: bool = False,
                     rate: str | float | None = None, progress: Callable[[int], None] | None = None) -> Any:
        """Re-deliver ``model``'s stored events written between ``since`` and ``until`` (and passing
        ``where(entry)``) to the handler named ``handler`` only, through the workers; events it
        completed already are skipped unless ``force`` (see :mod:`ormevents.delivery.celery.replay`).
        ``model``: an EventModel class, its event name (``"order"``) or its collection. Returns a
        :class:`~ormevents.delivery.celery.replay.ReplaySummary`. Needs ``init(redis_uri=...)``."""
        runtime = get_runtime()
        replay = _api("replay")
        meta = getattr(model, "__ormevents__", None)
        collection = meta.collection if meta is not None else None
        if collection is None:
            from .delivery.outbox.history import resolve_collection

            collection = await resolve_collection(runtime.database, str(model)) if isinstance(model, str) else None
        if collection is None:
            raise UnknownModelError(f"no stored events of a model {model!r}: give the model class, its event "
                                    "name (order) or its collection (orders)")
        return await replay(runtime.database, collection, handler, since=since, until=until, where=where,
                            force=force, dry_run=dry_run, rate=rate, progress=progress)

    async def cancel(self, event_id: uuid.UUID | str) -> bool:
        """Cancel a pending delayed event; ``True`` if it was still waiting."""
        publisher = get_runtime().publisher
        cancel = getattr(publisher, "cancel", None)
        if cancel is None:
            raise ConfigurationError(
                f"{type(publisher).__name__} cannot cancel delayed events; init() with redis_uri= to deliver through Celery"
            )
        return bool(await cancel(event_id))


event_bus = EventBus()
