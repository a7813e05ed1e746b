"""Creating the Celery apps of ormevents: the worker's, and a publisher's private one.

Example::

    app = create_worker_app()                  # settings from ORMEVENTS_* variables
    app = create_app(DeliverySettings(redis_url="redis://localhost:6379/0"))   # publish only
"""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

from ...handlers.registry import HandlerRegistry, registry
from ..metrics import prepare_worker_metrics
from .config import DeliverySettings, publishing_app
from .tasks import install
from .worker import WorkerDelivery


def create_app(settings: DeliverySettings, main: str = "ormevents") -> Celery:
    """A Celery app configured for ``settings`` (no tasks: publishers send by task name)."""
    return publishing_app(settings, main)


def create_worker_app(
    settings: DeliverySettings | None = None, handlers: HandlerRegistry | None = None
) -> Celery:
    """The worker's app: settings from the environment, ormevents' tasks and signals installed.

    ``ORMEVENTS_CELERY_CONFIG`` names an extra Celery config module applied on top;
    ``ORMEVENTS_METRICS_PORT`` serves Prometheus metrics (see :mod:`ormevents.delivery.metrics`).
    """
    settings = settings or DeliverySettings.from_env()
    metrics_port = prepare_worker_metrics()  # before prometheus-client is imported anywhere
    app = Celery("ormevents")
    app.conf.update(settings.celery_conf())
    extra = os.environ.get("ORMEVENTS_CELERY_CONFIG")
    if extra:
        app.config_from_object(extra)
    delivery = WorkerDelivery(settings, handlers or registry, app)
    delivery.metrics_port = metrics_port
    install(app, delivery)
    app.ormevents_delivery = delivery  # for introspection (Celery apps take attributes)
    return app
