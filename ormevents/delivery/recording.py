"""The publisher of an ``init()`` without a broker: keeps events in memory, delivers nothing.

It keeps the events in publish order, so a test (or a script) can assert exactly which events
a sequence of writes produced.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime

from ..events.event import Event
from .base import PublishedEvent, as_published
from .outbox.records import PendingEvent


class RecordingPublisher:
    """Keeps published events in memory, in publish order (no delivery); with ``limit``, only
    the last ``limit`` of them.

    Example::

        >>> import asyncio
        >>> publisher = RecordingPublisher()
        >>> asyncio.run(publisher.publish(Event(name="user.created")))
        >>> publisher.names()
        ['user.created']
    """

    def __init__(self, limit: int | None = None) -> None:
        self.published: deque[PublishedEvent] = deque(maxlen=limit)  # drops the oldest in O(1)
        self.limit = limit

    outbox = None
    """Events are taken through :meth:`publish` (no outbox): right after each write or commit."""

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        self.published.append(PublishedEvent(event, delay, eta))

    async def publish_many(self, events: Sequence[Event | PendingEvent]) -> int:
        """Record each of ``events`` (stored records are turned back into events), in order."""
        for item in events:
            event, delay, eta = as_published(item)
            await self.publish(event, delay=delay, eta=eta)
        return len(events)

    async def close(self) -> None:
        return None

    @property
    def events(self) -> list[Event]:
        """The published events, oldest first."""
        return [record.event for record in self.published]

    def names(self) -> list[str]:
        """The published event names, oldest first."""
        return [record.event.name for record in self.published]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.published.clear()
