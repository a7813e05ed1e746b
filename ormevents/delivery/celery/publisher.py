"""The Celery publisher: events from the write path to the broker, never blocking the loop.

``init(..., redis_uri=...)`` makes a :class:`CeleryPublisher` the runtime's publisher; model
writes and ``event_bus.publish`` both go through it. Network I/O never runs on the asyncio
loop: every send happens on the publisher's own small thread pool, bounded by the
publish-retry policy's ``timeout``, after which :class:`BrokerUnavailableError` is raised.

* no delay: one ``ormevents.dispatch`` message is sent to the broker; the worker fans it
  out to the matching handlers (see ``docs/delivery.md``);
* ``delay=`` seconds or ``eta=`` datetime: the message waits in the Redis schedule and is
  sent when due; :meth:`CeleryPublisher.cancel` removes it while it waits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from ...errors import BrokerUnavailableError, ConfigurationError
from ...events.event import Event
from ..base import due_time
from ..metrics import metrics
from ..tracing import with_trace_context
from .config import DeliverySettings
from .failed_api import FailedJobsMixin

logger = logging.getLogger("ormevents.delivery.celery.publisher")


class CeleryPublisher(FailedJobsMixin):
    """Publishes events through Celery (see module doc); implements :class:`~ormevents.delivery.base.Publisher`.

    Also reads, retries and removes failed jobs and reads event status (:mod:`ormevents.delivery.celery.failed_api`).
    """

    def __init__(self, settings: DeliverySettings, *, threads: int = 4) -> None:
        # Celery and redis-py load here, not when `import ormevents` runs (~0.3 s saved).
        import redis

        from .app import create_app
        from .scheduler import RedisSchedule
        from .sending import Sender

        self.settings = settings
        self.app = create_app(settings, main="ormevents-publisher")
        timeout = settings.publish_retry.timeout
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.sender = Sender(self.app, RedisSchedule(self.redis, settings.keys), settings)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ormevents-publish")
        self._closed = False

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        """Send ``event`` now, or at ``delay``/``eta``; raise before sending anything if it is invalid."""
        if not isinstance(event, Event):
            raise TypeError(f"publish() takes an ormevents Event, got {type(event).__name__}")
        due = due_time(delay, eta)
        event.to_json()  # fail here, before any I/O, if the event cannot travel
        event = with_trace_context(event)  # the handler continues this trace (OpenTelemetry, if installed)
        await self._off_loop(self.sender.publish, event, due, None, what=f"publish {event.name} {event.id}")
        metrics().published.labels(event=event.name).inc()
        logger.debug("published %s %s (due %s)", event.name, event.id, due,
                     extra={"event_id": str(event.id), "event_name": event.name, "state": "published"})

    async def cancel(self, event_id: uuid.UUID | str) -> bool:
        """Cancel a pending delayed event; ``True`` if it was still waiting."""
        return bool(await self._off_loop(self.sender.cancel, event_id, what=f"cancel {event_id}"))

    async def pending(self) -> int:
        """How many delayed events and retries wait in the schedule."""
        return int(await self._off_loop(self.sender.schedule.pending, what="count pending"))

    async def close(self) -> None:
        """Stop the send threads and release connections."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._release)

    def _release(self) -> None:
        self.app.close()
        self.redis.close()

    async def _off_loop(self, func: Any, *args: Any, what: str) -> Any:
        if self._closed:
            raise ConfigurationError("this publisher is closed; call ormevents.init() again")
        loop = asyncio.get_running_loop()
        # The send thread retries on its own (publish-retry policy); this bound also covers a
        # broker that accepts the connection and then never answers.
        limit = self.settings.publish_retry.timeout * 2 + 1
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._executor, func, *args), limit)
        except TimeoutError:
            raise BrokerUnavailableError(f"{what}: no answer from the broker/Redis within {limit:.1f} s") from None
