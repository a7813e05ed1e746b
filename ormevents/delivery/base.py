"""Where events go after a write: the :class:`Publisher` protocol every delivery implements, and
the optional :class:`Outbox` a publisher offers for durable hand-offs.

The model layer hands every event to ``runtime.publisher`` and knows nothing else of delivery.
A publisher whose ``outbox`` attribute is an :class:`Outbox` (the Celery publisher) gets the
events as records the model wrote with its data, after the commit; one without (eager,
recording, your own) gets each event through :meth:`Publisher.publish` right after the commit.
Implementations: :class:`~ormevents.delivery.celery.publisher.CeleryPublisher` (a broker and
workers), :class:`~ormevents.delivery.eager.EagerPublisher` (in-process, for tests) and
:class:`~ormevents.delivery.recording.RecordingPublisher` (keeps events in memory). The runtime
chooses one (:func:`ormevents.init`); nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..events.event import Event

if TYPE_CHECKING:
    from ..config import OutboxConfig
    from .outbox.records import PendingEvent


@runtime_checkable
class Publisher(Protocol):
    """Accepts events for delivery. ``delay`` (seconds) and ``eta`` are mutually exclusive."""

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        """Hand ``event`` over for delivery; raise a :class:`~ormevents.errors.PublishError` if it cannot be."""
        ...

    async def publish_many(self, events: Sequence[Event | PendingEvent]) -> int:
        """Hand several events over at once (pipelined where the broker allows); returns how many
        were handed over. Items may be stored outbox records (:class:`PendingEvent`), whose JSON is
        sent as stored and which are skipped when already sent."""
        ...

    async def close(self) -> None:
        """Release connections; the publisher is not used afterwards."""
        ...


@runtime_checkable
class Outbox(Protocol):
    """A publisher's durable hand-off (see module doc): the model writes each event's record with
    its data, then submits the record here once the write (or the transaction) committed."""

    def bind(self, database: Callable[[], Any], config: OutboxConfig) -> None:
        """Give the outbox the database holding the records (a callable: the runtime's database
        for the running loop) and its settings; called by ``init()``."""
        ...

    def submit(self, records: Sequence[PendingEvent]) -> None:
        """Hand committed records over without waiting (never raises for a broker problem: a
        record that cannot be handed over now stays pending for the relay)."""
        ...

    def sent_entries(self, home: str, key: Any) -> list[str]:
        """Ids of the entries of document ``key`` (collection ``home``) handed over and not yet
        cleaned up: the document's next write drops them in the same update."""
        ...

    def dropped_entries(self, home: str, key: Any, ids: list[str]) -> None:
        """That write went through: entries ``ids`` are gone from the document already."""
        ...

    def in_flight(self, home: str, key: Any) -> list[PendingEvent]:
        """The records of document ``key`` this process handed over and has not yet written to
        the history (the event history merges them: the document may have dropped them)."""
        ...

    async def flush(self, cleanup: bool = False) -> None:
        """Wait until the records submitted on this loop were handed over (``cleanup``: and
        marked sent in MongoDB)."""
        ...


@dataclass(frozen=True)
class PublishedEvent:
    """One recorded publish: the event and when it was asked to be delivered."""

    event: Event
    delay: float | None = None
    eta: datetime | None = None


def as_published(item: Event | PendingEvent) -> tuple[Event, float | None, datetime | None]:
    """``(event, delay, eta)`` to publish ``item`` (a stored record's due time becomes its ``eta``,
    unless it still knows the ``delay`` it was emitted with)."""
    if isinstance(item, Event):
        return item, None, None
    if item.delay is not None or item.due is None:
        return item.to_event(), item.delay, None
    return item.to_event(), None, datetime.fromtimestamp(item.due, UTC)


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
