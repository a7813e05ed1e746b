"""Where events go after a write: the :class:`Publisher` protocol and the in-process one.

The model layer hands every event to ``runtime.publisher``. Without a broker configured that
is a :class:`RecordingPublisher`, which keeps the events in memory in the order they were
published, so a test (or a script) can assert exactly which events a sequence of writes
produced. The Celery publisher (``ormevents.bus``) implements the same protocol.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from .events import Event


@runtime_checkable
class Publisher(Protocol):
    """Accepts events for delivery. ``delay`` (seconds) and ``eta`` are mutually exclusive."""

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        """Hand ``event`` over for delivery; raise a :class:`~ormevents.errors.PublishError` if it cannot be."""
        ...

    async def close(self) -> None:
        """Release connections; the publisher is not used afterwards."""
        ...


@dataclass(frozen=True)
class PublishedEvent:
    """One recorded publish: the event and when it was asked to be delivered."""

    event: Event
    delay: float | None = None
    eta: datetime | None = None


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

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        self.published.append(PublishedEvent(event, delay, eta))

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
