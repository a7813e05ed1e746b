"""A worker delivery run in the test process on a real Redis, its messages recorded instead of sent."""

from __future__ import annotations

import uuid
from typing import Any

from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.worker import WorkerDelivery
from ormevents.handlers import HandlerRegistry


def recording_delivery(redis_uri: str, registry: HandlerRegistry,
                       prefix: str) -> tuple[WorkerDelivery, list[dict[str, Any]]]:
    """A :class:`WorkerDelivery` for ``registry`` on a fresh queue ``<prefix><random>``, and the
    list its sender appends each message to (no broker)."""
    settings = DeliverySettings(redis_url=redis_uri, queue_name=f"{prefix}{uuid.uuid4().hex[:10]}")
    delivery = WorkerDelivery(settings, registry, app=None)  # type: ignore[arg-type]  # the sender is replaced below
    sent: list[dict[str, Any]] = []
    delivery.sender.send = sent.append  # type: ignore[method-assign,assignment]  # record messages, no broker
    return delivery, sent
