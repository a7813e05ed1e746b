"""A user's own Celery app (their broker, queue and task) with ormevents attached in one call:
the worker of ``tests/integration/test_attach_celery.py`` runs ``celery -A`` on this module."""

from __future__ import annotations

import os

import redis
from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

import ormevents

app = Celery("shop", broker=os.environ["SHOP_BROKER_URL"])
app.conf.update(task_default_queue=os.environ["SHOP_TASK_QUEUE"], task_serializer="json")


@app.task(name="shop.ping")  # type: ignore[untyped-decorator]  # celery is untyped
def ping(tag: str) -> None:
    """The user's own task: marks ``shop:ping:<tag>`` in Redis."""
    redis.Redis.from_url(os.environ["SHOP_BROKER_URL"]).set(f"shop:ping:{tag}", os.getpid())


ormevents.attach_celery(app, redis_url=os.environ["SHOP_REDIS_URL"], queue=os.environ["SHOP_EVENTS_QUEUE"],
                        imports=["tests.integration.delivery_handlers"])
