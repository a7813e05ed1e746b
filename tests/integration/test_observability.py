"""Structured log context on every state change, and the worker's Prometheus endpoint."""

from __future__ import annotations

import logging
import re
import urllib.request
from typing import Any

import pytest
import redis

from ormevents import Event
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.handlers import HandlerRegistry, event_handler
from ormevents.handlers.retry import RetryPolicy
from tests.integration.test_delivery import tag, wait_for
from tests.integration.test_failed_jobs import failed_switch
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def test_every_state_change_logs_event_handler_and_attempt(redis_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    from ormevents.delivery.celery.worker import WorkerDelivery

    reg = HandlerRegistry()

    @event_handler("a.b", name="obs.flaky", registry=reg, retry=RetryPolicy(max_retries=1))
    def flaky(event: Event) -> str:
        if event.data["fail"]:
            raise ValueError("no")
        return "ok"

    settings = DeliverySettings(redis_url=redis_uri, queue_name=f"obs{tag()}")
    delivery = WorkerDelivery(settings, reg, app=None)  # type: ignore[arg-type]  # run() sends nothing here
    good, bad = Event(name="a.b", data={"fail": False}), Event(name="a.b", data={"fail": True})
    with caplog.at_level(logging.DEBUG, logger="ormevents.delivery.celery.worker"):
        assert delivery.run((good.to_dict(), "obs.flaky", 0, None)) == "ok"
        delivery.run((bad.to_dict(), "obs.flaky", 0, None))
        delivery.run((bad.to_dict(), "obs.flaky", 1, None))
    seen = [(r.event_id, r.handler, r.attempt, r.state, r.levelname)  # type: ignore[attr-defined]
            for r in caplog.records if hasattr(r, "state")]
    assert seen == [  # a first attempt's start at DEBUG (its outcome follows at INFO), a retry's at INFO
        (str(good.id), "obs.flaky", 1, "running", "DEBUG"), (str(good.id), "obs.flaky", 1, "succeeded", "INFO"),
        (str(bad.id), "obs.flaky", 1, "running", "DEBUG"), (str(bad.id), "obs.flaky", 1, "retrying", "WARNING"),
        (str(bad.id), "obs.flaky", 2, "running", "INFO"), (str(bad.id), "obs.flaky", 2, "failed", "ERROR"),
    ]
    delivery.redis.close()


async def test_worker_serves_prometheus_metrics(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str,
                                                ops_worker: WorkerProcess) -> None:
    t = tag()
    await failed_switch(ops_bus, ops_redis, ops_queue, t)
    port = ops_worker.env["ORMEVENTS_METRICS_PORT"]

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    text = await wait_for(lambda: (body := scrape()) and 'ormevents_handler_failed_total{handler="t.switch"}' in body and body)

    def value(metric: str) -> float:
        found = re.search(rf'^{re.escape(metric)} ([0-9.e+]+)$', text, re.M)
        assert found, metric
        return float(found.group(1))

    assert value('ormevents_handler_failed_total{handler="t.switch"}') >= 1
    assert value('ormevents_handler_retried_total{handler="t.switch"}') >= 2
    assert value('ormevents_handler_delivered_total{handler="t.switch"}') >= 3
    assert value('ormevents_handler_duration_seconds_count{handler="t.switch"}') >= 3
    assert value('ormevents_publish_to_start_seconds_count{handler="t.switch"}') >= 1
