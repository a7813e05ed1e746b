"""Helpers for testing an app built on ormevents: capture the events a block emits, reach the
eager publisher.

* :func:`capture_events` records the events emitted inside a block (they still go on to the
  configured publisher);
* :func:`eager_publisher` is the runtime's :class:`~ormevents.delivery.eager.EagerPublisher`
  (``init(..., eager=True)``): handler runs, results, failed jobs, the simulated clock.

Example::

    with capture_events() as events:
        await user.update(status="active")
    assert events.names() == ["user.updated"]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ..delivery.base import PublishedEvent, Publisher, as_published
from ..delivery.eager import EagerPublisher
from ..delivery.outbox.records import PendingEvent
from ..errors import ConfigurationError
from ..events.event import Event
from ..runtime import get_runtime


def eager_publisher() -> EagerPublisher:
    """The current runtime's :class:`EagerPublisher` (``init(..., eager=True)``)."""
    publisher = get_runtime().publisher
    if not isinstance(publisher, EagerPublisher):
        raise ConfigurationError("the runtime is not in eager mode: call init(..., eager=True)")
    return publisher


class CapturedEvents:
    """The events a :func:`capture_events` block saw, in publish order."""

    def __init__(self) -> None:
        self.published: list[PublishedEvent] = []

    @property
    def events(self) -> list[Event]:
        return [record.event for record in self.published]

    def names(self) -> list[str]:
        return [record.event.name for record in self.published]

    def named(self, name: str) -> list[Event]:
        """The captured events called ``name``."""
        return [event for event in self.events if event.name == name]

    def __len__(self) -> int:
        return len(self.published)

    def __getitem__(self, index: int) -> Event:
        return self.published[index].event

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)


class _Capturing:
    def __init__(self, inner: Publisher, sink: CapturedEvents) -> None:
        self.inner, self.sink = inner, sink
        outbox = getattr(inner, "outbox", None)
        self.outbox = None if outbox is None else _CapturingOutbox(outbox, sink)

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        self.sink.published.append(PublishedEvent(event, delay, eta))
        await self.inner.publish(event, delay=delay, eta=eta)

    async def publish_many(self, events: Sequence[Event | PendingEvent]) -> int:
        self.sink.published.extend(PublishedEvent(*as_published(item)) for item in events)
        return await self.inner.publish_many(events)

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _CapturingOutbox:
    """Sees the records a write hands to the outbox (after its commit), as the events they carry."""

    def __init__(self, inner: Any, sink: CapturedEvents) -> None:
        self.inner, self.sink = inner, sink

    def submit(self, records: Sequence[PendingEvent]) -> None:
        for record in records:
            if record.event is not None:  # not records a delete moved out of their document
                self.sink.published.append(PublishedEvent(*as_published(record)))
        self.inner.submit(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Record every event published inside the block (they are still delivered as configured).

    Example::

        with capture_events() as events:
            await user.update(status="active")
        assert events.names() == ["user.updated"]
        assert events[0].changes["status"] == ("inactive", "active")
    """
    runtime = get_runtime()
    captured = CapturedEvents()
    inner = runtime.publisher
    runtime.publisher = _Capturing(inner, captured)
    try:
        yield captured
    finally:
        runtime.publisher = inner
