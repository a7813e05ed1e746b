"""The Celery publisher: events from the write path to the broker, never blocking the loop.

``init(..., redis_uri=...)`` makes a :class:`CeleryPublisher` the runtime's publisher; model
writes and ``event_bus.publish`` both go through it. Network I/O never runs on the asyncio
loop: every send happens on the publisher's own small thread pool, bounded by the
publish-retry policy's ``timeout``, after which :class:`BrokerUnavailableError` is raised.

* no delay: one ``ormevents.dispatch`` message is sent to the broker; the worker fans it
  out to the matching handlers (see ``docs/delivery.md``);
* model writes do not call :meth:`CeleryPublisher.publish`: their events are recorded with the
  write and handed over by :attr:`CeleryPublisher.outbox` right after the commit, on the event
  loop (:mod:`ormevents.delivery.celery.outbox`); :meth:`CeleryPublisher.publish_many` sends
  many events (or stored records, for the relay) in one pipelined step;
* ``delay=`` seconds or ``eta=`` datetime: the message waits in the Redis schedule and is
  sent when due; :meth:`CeleryPublisher.cancel` removes it while it waits.

A process forked from one that created the publisher (gunicorn ``--preload``,
``multiprocessing``) gets fresh send threads, Redis and broker connections right after the
fork (``os.register_at_fork``); the parent's are left to the parent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
import weakref
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from ...errors import BrokerUnavailableError, ConfigurationError
from ...events.event import Event
from ..base import due_time
from ...urls import redact_url
from ..metrics import metrics
from ..outbox.records import PendingEvent, build_pending
from ..tracing import with_trace_context
from .config import DeliverySettings, publishing_app
from .failed_api import FailedJobsMixin
from .outbox import CeleryOutbox

logger = logging.getLogger("ormevents.delivery.celery.publisher")


class CeleryPublisher(FailedJobsMixin):
    """Publishes events through Celery (see module doc); implements :class:`~ormevents.delivery.base.Publisher`.

    Also reads, retries and removes failed jobs and reads event status (:mod:`ormevents.delivery.celery.failed_api`).
    """

    def __init__(self, settings: DeliverySettings, *, threads: int = 4) -> None:
        self.settings = settings
        self._threads = threads
        self.outbox = CeleryOutbox(settings, self._send_many)
        self._connect()
        self._closed = False
        _live.add(self)

    def _connect(self) -> None:
        """Create the Celery app, the Redis client and the send threads (again in a forked child)."""
        # Celery and redis-py load here, not when `import ormevents` runs (~0.3 s saved).
        import redis

        from .scheduler import RedisSchedule
        from .sending import Sender

        settings = self.settings
        self.app = publishing_app(settings, main="ormevents-publisher")
        timeout = settings.publish_retry.timeout
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.sender = Sender(self.app, RedisSchedule(self.redis, settings.keys), settings)
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="ormevents-publish")
        self._requeue = None

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

    async def publish_many(self, events: Sequence[Event | PendingEvent]) -> int:
        """Hand ``events`` to the broker in one step (one Lua script on a Redis broker), on the
        loop; stored outbox records (:class:`PendingEvent`) are sent as stored, and skipped when
        already sent. Returns how many were handed over; :class:`BrokerUnavailableError` if the
        broker cannot be reached (nothing of a failed batch is marked sent)."""
        import redis

        if self._closed:
            raise ConfigurationError("this publisher is closed; call ormevents.init() again")
        records = [item for item in events if isinstance(item, PendingEvent)]
        plain = [build_pending(item) for item in events if not isinstance(item, PendingEvent)]
        state = self.outbox.state()
        try:
            handed = await self.outbox.push(state, records) if records else 0
            handed += await self.outbox.push(state, plain, mark=False) if plain else 0
        except (redis.RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"could not publish {len(events)} events to {redact_url(self.settings.broker)}: "
                                         f"{exc}") from exc
        if metrics().enabled and handed:
            for name, count in Counter(item.name for item in [*records, *plain]).items():
                metrics().published.labels(event=name).inc(count)
        return handed

    async def _send_many(self, messages: list[dict[str, Any]]) -> None:
        await self._off_loop(_send_all, self.sender, messages, what=f"publish {len(messages)} events")

    async def cancel(self, event_id: uuid.UUID | str) -> bool:
        """Cancel a pending delayed event; ``True`` if it was still waiting."""
        return bool(await self._off_loop(self.sender.cancel, event_id, what=f"cancel {event_id}"))

    async def replay(self, database: Any, collection: str, handler: str, **options: Any) -> Any:
        """Replay ``collection``'s stored events to ``handler`` only (:mod:`.replay`); returns a
        :class:`~ormevents.delivery.celery.replay.ReplaySummary`."""
        from ...handlers.registry import registry
        from .replay import replay_events

        return await replay_events(self, registry, database, collection, handler, **options)

    async def pending(self) -> int:
        """How many delayed events and retries wait in the schedule."""
        return int(await self._off_loop(self.sender.schedule.pending, what="count pending"))

    async def close(self) -> None:
        """Stop the send threads and release connections."""
        if self._closed:
            return
        try:
            await self.outbox.close()
        finally:
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


def _send_all(sender: Any, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        sender.send(message)


_live: weakref.WeakSet[CeleryPublisher] = weakref.WeakSet()


def _reconnect_after_fork() -> None:
    """In a forked child: the parent's send threads do not exist here and its connections are
    the parent's; give every open publisher its own (nothing of the parent's is closed)."""
    for publisher in list(_live):
        if publisher._closed:
            continue
        try:
            publisher.outbox.reset_after_fork()
            publisher._connect()
        except Exception:  # an at-fork hook must not raise; the next publish reports the problem
            logger.exception("could not reset the ormevents publisher after fork")


os.register_at_fork(after_in_child=_reconnect_after_fork)
