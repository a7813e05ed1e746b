"""A small shop's handlers for the dashboard's browser test (``ORMEVENTS_IMPORTS``).

``shop.notify_carrier`` fails (ConnectionError) until ``<queue>:carrier:fixed`` is set in Redis,
then succeeds; it counts its runs in ``<queue>:carrier:runs``. The others always succeed.
"""

from __future__ import annotations

import os

import redis

from ormevents import Event, RetryPolicy, event_handler

QUEUE = os.environ.get("ORMEVENTS_QUEUE", "")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["ORMEVENTS_REDIS_URL"])


@event_handler("shop_order.updated", when="status", changes_to="paid", name="shop.send_receipt")
def send_receipt(event: Event) -> dict[str, str]:
    return {"sent_to": str(event.data.get("email"))}


@event_handler("shop_order.updated", when="status", changes_to="shipped", name="shop.notify_carrier",
               retry=RetryPolicy(max_retries=2, interval_start=0.2, interval_step=0, interval_max=0.2))
def notify_carrier(event: Event) -> str:
    with _redis() as client:
        client.incr(f"{QUEUE}:carrier:runs")
        if not client.exists(f"{QUEUE}:carrier:fixed"):
            raise ConnectionError("carrier API refused the connection")
    return "label printed"


@event_handler("shop_order.*", name="shop.audit")
def audit(event: Event) -> int:
    return len(event.changes)
