"""OpenTelemetry trace propagation, when ``opentelemetry-api`` is installed (extra ``otel``).

The publisher adds the current trace context (W3C ``traceparent``/``tracestate``) to the
event's metadata; the worker continues that trace with a span around each handler run
(``ormevents.handle <handler>``, kind CONSUMER), current inside sync and async handlers, so
spans a handler opens are children of the write that emitted the event. Without the package
both functions change nothing.

Example::

    event = with_trace_context(event)            # publisher side
    with handler_span(event, "billing.activate", attempt=0) as attach:
        attach(coroutine)                        # worker side: the span is current inside
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ..events.event import Event

T = TypeVar("T")
KEYS = ("traceparent", "tracestate")


def _otel() -> Any:
    try:
        from opentelemetry import context, propagate, trace
    except ImportError:
        return None
    return context, propagate, trace


def with_trace_context(event: Event) -> Event:
    """``event`` with the active trace context in its metadata (unchanged if none/no OTel)."""
    otel = _otel()
    if otel is None or any(key in event.metadata for key in KEYS):
        return event
    carrier: dict[str, str] = {}
    otel[1].inject(carrier)
    found = {key: carrier[key] for key in KEYS if key in carrier}
    return event.model_copy(update={"metadata": {**event.metadata, **found}}) if found else event


@contextlib.contextmanager
def handler_span(event: Event, handler: str, attempt: int) -> Iterator[Callable[[Awaitable[T]], Awaitable[T]]]:
    """A span for one handler run, continuing the event's trace; yields a wrapper that makes
    the span current inside an awaitable run on another thread (the worker loop)."""
    otel = _otel()
    if otel is None:
        yield _unchanged
        return
    context, propagate, trace = otel
    parent = propagate.extract({k: v for k, v in event.metadata.items() if k in KEYS and isinstance(v, str)})
    tracer = trace.get_tracer("ormevents")
    attributes = {"ormevents.event_id": str(event.id), "ormevents.event_name": event.name,
                  "ormevents.handler": handler, "ormevents.attempt": attempt}
    with tracer.start_as_current_span(f"ormevents.handle {handler}", context=parent,
                                      kind=trace.SpanKind.CONSUMER, attributes=attributes):
        current = context.get_current()

        async def attach(awaitable: Awaitable[T]) -> T:
            token = context.attach(current)
            try:
                return await awaitable
            finally:
                context.detach(token)

        yield attach


async def _unchanged(awaitable: Awaitable[T]) -> T:
    return await awaitable
