"""Prometheus metrics, when ``prometheus-client`` is installed (extra ``metrics``); else no-ops.

===========================================  =========  ===============================
metric                                       kind       labels
===========================================  =========  ===============================
``ormevents_events_published_total``         counter    ``event`` (publishing process)
``ormevents_handler_delivered_total``        counter    ``handler`` (a run started)
``ormevents_handler_succeeded_total``        counter    ``handler``
``ormevents_handler_retried_total``          counter    ``handler``
``ormevents_handler_failed_total``           counter    ``handler`` (stored as failed job)
``ormevents_publish_to_start_seconds``       histogram  ``handler`` (due -> first attempt)
``ormevents_handler_duration_seconds``       histogram  ``handler``
``ormevents_relay_published_total``          counter    (events the relay published)
``ormevents_outbox_pending``                 gauge      ``collection`` (set by the relay)
``ormevents_outbox_oldest_age_seconds``      gauge      ``collection`` (set by the relay)
``ormevents_relay_lag_seconds``              gauge      (since the least recent relay pass)
===========================================  =========  ===============================

The outbox gauges are refreshed by the relay every few seconds
(:mod:`ormevents.delivery.outbox.status`); ``ormevents outbox status`` shows the same figures.

A worker started with ``ORMEVENTS_METRICS_PORT`` serves them over HTTP on that port from its
main process; prefork children write to ``PROMETHEUS_MULTIPROC_DIR`` (set to a fresh
temporary directory when absent), which the main process aggregates.

Example::

    metrics().published.labels(event="user.created").inc()     # a no-op without the extra
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import lru_cache
from typing import Any

logger = logging.getLogger("ormevents.delivery.metrics")

PORT_ENV = "ORMEVENTS_METRICS_PORT"


class _NoOp:
    """Stands in for a metric when prometheus-client is absent."""

    def labels(self, *args: Any, **kwargs: Any) -> _NoOp:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def observe(self, amount: float) -> None:
        return None

    def set(self, value: float) -> None:
        return None


class Metrics:
    """The metrics ormevents updates (real ones, or no-ops; see module doc)."""

    published: Any
    delivered: Any
    succeeded: Any
    retried: Any
    failed: Any
    latency: Any
    duration: Any
    relayed: Any
    outbox_pending: Any
    outbox_oldest_age: Any
    relay_lag: Any

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            self.enabled = False
            noop = _NoOp()
            self.published = self.delivered = self.succeeded = self.retried = self.failed = noop
            self.latency = self.duration = noop
            self.relayed = self.outbox_pending = self.outbox_oldest_age = self.relay_lag = noop
            return
        self.enabled = True
        self.published = prom.Counter("ormevents_events_published", "Events handed to the broker or schedule", ["event"])
        self.delivered = prom.Counter("ormevents_handler_delivered", "Handler runs started", ["handler"])
        self.succeeded = prom.Counter("ormevents_handler_succeeded", "Handler runs that succeeded", ["handler"])
        self.retried = prom.Counter("ormevents_handler_retried", "Handler runs that failed and were retried", ["handler"])
        self.failed = prom.Counter("ormevents_handler_failed", "Handlers stored as failed jobs", ["handler"])
        self.latency = prom.Histogram("ormevents_publish_to_start_seconds",
                                      "From publish (or due time) to the handler's first attempt", ["handler"])
        self.duration = prom.Histogram("ormevents_handler_duration_seconds", "Handler run time", ["handler"])
        self.relayed = prom.Counter("ormevents_relay_published", "Outbox events the relay published")
        self.outbox_pending = prom.Gauge("ormevents_outbox_pending", "Outbox events not yet handed to the broker",
                                         ["collection"], multiprocess_mode="livemax")
        self.outbox_oldest_age = prom.Gauge("ormevents_outbox_oldest_age_seconds",
                                            "Age of the oldest pending outbox event", ["collection"],
                                            multiprocess_mode="livemax")
        self.relay_lag = prom.Gauge("ormevents_relay_lag_seconds", "Seconds since the least recent relay pass",
                                    multiprocess_mode="livemax")


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    """The process's :class:`Metrics` (created once: Prometheus names are process-global)."""
    return Metrics()


def prepare_worker_metrics(env: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """Before prometheus-client is imported in a worker: the metrics port, and a
    multiprocess directory for prefork children. ``None`` when metrics are off."""
    port = env.get(PORT_ENV)
    if not port:
        return None
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ormevents-metrics-")
    return int(port)


def serve_worker_metrics(port: int) -> bool:
    """Serve the aggregated metrics of this worker's processes on ``port``; ``False`` when
    prometheus-client is not installed (logged once)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector
    except ImportError:
        logger.warning("%s is set but prometheus-client is not installed: pip install 'ormevents[metrics]'", PORT_ENV)
        return False
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, registry=registry)
    logger.info("ormevents metrics on http://0.0.0.0:%d/metrics", port)
    return True
