"""OpenTelemetry propagation: the publisher's trace continues around the handler (in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ormevents import Event
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.tracing import handler_span, with_trace_context
from ormevents.handlers import HandlerRegistry, event_handler

sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    yield memory


def test_trace_continues_from_the_write_into_sync_and_async_handlers(exporter: InMemorySpanExporter) -> None:
    from ormevents.delivery.celery.worker import WorkerDelivery

    tracer = trace.get_tracer("test")
    reg = HandlerRegistry()

    @event_handler("a.b", name="sync", registry=reg)
    def sync_handler(event: Event) -> None:
        with tracer.start_as_current_span("inner sync"):
            pass

    @event_handler("a.b", name="async", registry=reg)
    async def async_handler(event: Event) -> None:
        with tracer.start_as_current_span("inner async"):
            pass

    with tracer.start_as_current_span("model write") as write:
        event = with_trace_context(Event(name="a.b"))
    assert event.metadata["traceparent"].split("-")[1] == format(write.get_span_context().trace_id, "032x")
    assert with_trace_context(Event(name="a.b")).metadata == {}  # no active span: nothing added
    delivery = WorkerDelivery(DeliverySettings(redis_url="redis://unused"), reg, app=None)  # type: ignore[arg-type]  # no I/O here
    try:
        for name in ("sync", "async"):
            with handler_span(event, name, 0) as attach:
                delivery._invoke(reg.get(name), event, attach)  # type: ignore[arg-type]
    finally:
        delivery.process_stopping()
    spans: dict[str, Any] = {span.name: span for span in exporter.get_finished_spans()}
    trace_id = write.get_span_context().trace_id
    for name in ("sync", "async"):
        handle, inner = spans[f"ormevents.handle {name}"], spans[f"inner {name}"]
        assert handle.context.trace_id == trace_id and handle.parent.span_id == write.get_span_context().span_id
        assert inner.parent.span_id == handle.context.span_id
        assert handle.attributes["ormevents.event_id"] == str(event.id) and handle.kind == trace.SpanKind.CONSUMER


def test_handler_span_keeps_the_write_as_parent_and_links_the_celery_task_span(exporter: InMemorySpanExporter) -> None:
    """With opentelemetry-instrumentation-celery on, the task runs inside Celery's ``run/...``
    span; the handler span stays a child of the write (the event's context) and links to it."""
    from celery import Celery
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from ormevents.delivery.tracing import instrument_celery

    assert instrument_celery({"ORMEVENTS_OTEL_CELERY": "0"}) is False
    assert instrument_celery({}) is True and CeleryInstrumentor().is_instrumented_by_opentelemetry
    try:
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("model write") as write:
            event = with_trace_context(Event(name="a.b"))
        app = Celery("traced", set_as_current=False)

        @app.task(name="traced.run_handler")
        def run_handler() -> None:
            with handler_span(event, "h", 0):
                pass

        exporter.clear()
        run_handler.apply()
    finally:
        CeleryInstrumentor().uninstrument()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    task, handle = spans["run/traced.run_handler"], spans["ormevents.handle h"]
    assert handle.parent.span_id == write.get_span_context().span_id
    assert handle.context.trace_id == write.get_span_context().trace_id != task.context.trace_id
    assert [link.context.span_id for link in handle.links] == [task.context.span_id]


def test_no_span_is_made_while_no_tracer_provider_is_set() -> None:
    """OpenTelemetry's API alone (no SDK, no provider set) records nothing: a run pays no span."""
    import subprocess
    import sys

    code = ("import contextlib; from ormevents import Event; from ormevents.delivery.tracing import handler_span; "
            "cm = handler_span(Event(name='a.b'), 'h', 0); assert isinstance(cm, contextlib.nullcontext), cm")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
