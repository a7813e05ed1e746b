"""Where events go after a write: the :class:`Publisher` protocol every delivery implements.

The model layer hands every event to ``runtime.publisher`` and knows nothing else of delivery.
Implementations: :class:`~ormevents.delivery.celery.publisher.CeleryPublisher` (a broker and
workers), :class:`~ormevents.delivery.eager.EagerPublisher` (in-process, for tests) and
:class:`~ormevents.delivery.recording.RecordingPublisher` (keeps events in memory). The runtime
chooses one (:func:`ormevents.init`); nothing here does I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..events.event import Event


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


def due_time(delay: float | None, eta: datetime | None) -> float | None:
    """Epoch seconds an event is due at, or ``None`` for now (``delay`` xor ``eta``).

    Example::

        >>> due_time(None, None) is None
        True
    """
    if delay is not None and eta is not None:
        raise ConfigurationError("give either delay= (seconds) or eta= (a datetime), not both")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay != delay:
            raise ConfigurationError(f"delay= takes seconds as a number, got {delay!r}")
        return time.time() + delay if delay > 0 else None
    if eta is not None:
        if not isinstance(eta, datetime):
            raise ConfigurationError(f"eta= takes a datetime, got {eta!r}")
        return (eta.replace(tzinfo=UTC) if eta.tzinfo is None else eta).timestamp()
    return None
