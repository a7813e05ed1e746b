"""The dispatch runs the handlers of its own queue itself, each as its own run in the ledger, and
sends messages for the others (handlers routed elsewhere, and those left when its budget ran out)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ormevents import Event
from ormevents.delivery.celery import fanout
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.worker import WorkerDelivery
from ormevents.handlers import HandlerRegistry, event_handler
from ormevents.handlers.retry import RetryPolicy
from ormevents.jobs.status import read_status
from tests.integration.test_delivery import tag

pytestmark = pytest.mark.integration


def _delivery(redis_uri: str, reg: HandlerRegistry) -> tuple[WorkerDelivery, list[dict[str, Any]]]:
    settings = DeliverySettings(redis_url=redis_uri, queue_name=f"fan{tag()}")
    delivery = WorkerDelivery(settings, reg, app=None)  # type: ignore[arg-type]  # the sender is replaced below
    sent: list[dict[str, Any]] = []
    delivery.sender.send = sent.append  # type: ignore[method-assign,assignment]  # record messages, no broker
    return delivery, sent


def test_local_handlers_run_in_the_dispatch_and_routed_ones_get_a_message(redis_uri: str) -> None:
    reg, ran = HandlerRegistry(), []
    event_handler("f.x", name="f.one", registry=reg)(lambda event: ran.append("one"))
    event_handler("f.x", name="f.two", registry=reg, retry=RetryPolicy(max_retries=1, min_delay=60))(
        lambda event: 1 / 0)
    event_handler("f.x", name="f.far", registry=reg, queue="elsewhere")(lambda event: ran.append("far"))
    delivery, sent = _delivery(redis_uri, reg)
    event = Event(name="f.x")
    assert delivery.dispatch((event.to_dict(), None)) == ["f.one", "f.two", "f.far"]
    assert ran == ["one"] and [(m["args"][1], m["kwargs"]["run_id"], m["kwargs"]["queue"]) for m in sent] == \
        [("f.far", "f.far@0", "elsewhere")]
    status = read_status(delivery.redis, delivery.keys, str(event.id))
    assert status is not None and {n: h.state for n, h in status.handlers.items()} == \
        {"f.one": "succeeded", "f.two": "retrying", "f.far": "queued"}   # each its own run, retried on its own
    assert delivery.dispatch((event.to_dict(), None)) == ["f.two", "f.far"]   # a redelivered dispatch
    assert ran == ["one"], "a completed run never runs again"
    delivery.redis.close()


def test_handlers_left_when_the_budget_is_spent_are_sent(redis_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "INLINE_BUDGET", 0.05)
    reg, ran = HandlerRegistry(), []
    def slow(event: Event) -> None:
        time.sleep(0.1)
        ran.append("slow")

    event_handler("f.y", name="f.slow", registry=reg)(slow)
    event_handler("f.y", name="f.next", registry=reg)(lambda event: ran.append("next"))
    delivery, sent = _delivery(redis_uri, reg)
    delivery.dispatch((Event(name="f.y").to_dict(), None))
    assert ran == ["slow"] and [(m["args"][1], m["kwargs"]["run_id"]) for m in sent] == [("f.next", "f.next@0")]
    delivery.redis.close()
