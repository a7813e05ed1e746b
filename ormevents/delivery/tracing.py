"""OpenTelemetry trace propagation, when ``opentelemetry-api`` is installed (extra ``otel``).

The publisher adds the current trace context (W3C ``traceparent``/``tracestate``) to the
event's metadata; the worker continues that trace with a span around each handler run
(``ormevents.handle <handler>``, kind CONSUMER), current inside sync and async handlers, so
spans a handler opens are children of the write that emitted the event. Without the package
both functions change nothing.

Celery's own spans (publishing a task, running it) come from ``opentelemetry-instrumentation-celery``
(:func:`instrument_celery`, called in every worker process; ``ORMEVENTS_OTEL_CELERY=0`` turns it
off), not from code of ours. They cannot carry the write's trace by themselves: a delayed event
or a retry waits in the Redis schedule and is sent later by the poller, outside any request, so
its task spans start a new trace. The event's own context does travel (in its metadata), so the
handler span keeps the write as its parent, and links to the task span it runs in.

Example::

    event = with_trace_context(event)            # publisher side
    with handler_span(event, "billing.activate", attempt=0) as attach:
        attach(coroutine)                        # worker side: the span is current inside
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ..events.event import Event

T = TypeVar("T")
KEYS = ("traceparent", "tracestate")


@functools.cache
def _otel() -> Any:
    """OpenTelemetry's ``context``, ``propagate`` and ``trace`` modules (``None`` without its API);
    looked up once (the import statement was ~7% of building an event record)."""
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
    if not otel[2].get_current_span().get_span_context().is_valid:
        return event  # no span: nothing to inject (~9% of building the record otherwise)
    carrier: dict[str, str] = {}
    otel[1].inject(carrier)
    found = {key: carrier[key] for key in KEYS if key in carrier}
    return event.model_copy(update={"metadata": {**event.metadata, **found}}) if found else event


def handler_span(event: Event, handler: str,
                 attempt: int) -> contextlib.AbstractContextManager[Callable[[Awaitable[T]], Awaitable[T]]]:
    """A span for one handler run, continuing the event's trace; yields a wrapper that makes
    the span current inside an awaitable run on another thread (the worker loop). Without
    OpenTelemetry, or with its API but no tracer provider set (nothing would record the span),
    nothing is done (~4% of a no-op run's time otherwise)."""
    otel = _otel()
    if otel is None or _records_nothing(otel[2]):
        return contextlib.nullcontext(_unchanged)
    return _span(event, handler, attempt, otel)


def _records_nothing(trace: Any) -> bool:
    """True while OpenTelemetry's global tracer provider is its API's placeholder (no SDK set)."""
    return isinstance(trace.get_tracer_provider(), _placeholders(trace))


@functools.cache
def _placeholders(trace: Any) -> tuple[type, ...]:
    """The tracer provider types of OpenTelemetry's API that record nothing (looked up once)."""
    return tuple(t for t in (getattr(trace, "ProxyTracerProvider", None), getattr(trace, "NoOpTracerProvider", None))
                 if isinstance(t, type))


@contextlib.contextmanager
def _span(event: Event, handler: str, attempt: int, otel: Any) -> Iterator[Callable[[Awaitable[T]], Awaitable[T]]]:
    context, propagate, trace = otel
    parent = propagate.extract({k: v for k, v in event.metadata.items() if k in KEYS and isinstance(v, str)})
    tracer = trace.get_tracer("ormevents")
    task = trace.get_current_span().get_span_context()  # Celery's run span, when instrumented
    links = [trace.Link(task)] if task.is_valid else []
    attributes = {"ormevents.event_id": str(event.id), "ormevents.event_name": event.name,
                  "ormevents.handler": handler, "ormevents.attempt": attempt}
    with tracer.start_as_current_span(f"ormevents.handle {handler}", context=parent, links=links,
                                      kind=trace.SpanKind.CONSUMER, attributes=attributes):
        current = context.get_current()

        async def attach(awaitable: Awaitable[T]) -> T:
            token = context.attach(current)
            try:
                return await awaitable
            finally:
                context.detach(token)

        yield attach


def instrument_celery(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Turn on ``opentelemetry-instrumentation-celery`` in this process (idempotent); ``False``
    when it is not installed or ``ORMEVENTS_OTEL_CELERY=0``."""
    if env.get("ORMEVENTS_OTEL_CELERY", "1") == "0":
        return False
    try:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
    except ImportError:
        return False
    instrumentor = CeleryInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    return True


async def _unchanged(awaitable: Awaitable[T]) -> T:
    return await awaitable
