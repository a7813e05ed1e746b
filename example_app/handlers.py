"""The shop's event handlers, run by a Celery worker (``ORMEVENTS_IMPORTS=example_app.handlers``).

Each handler notes its run (and attempt number) in the ``timeline`` collection, which the demo
prints. Effects are idempotent (keyed by event id), so a redelivered task changes nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio
from pymongo import AsyncMongoClient, MongoClient

from ormevents import Event, RetryPolicy, event_handler, model_event_handler
from ormevents.delivery.celery.runtime import on_worker_start, on_worker_stop
from ormevents.model.bson_form import to_bson

from .settings import CARRIER_FIXED, Settings


class _Clients:
    """Clients created once per worker process, on its persistent event loop."""

    mongo: Any = None
    redis: redis.asyncio.Redis | None = None
    settings: Settings | None = None


clients = _Clients()


@on_worker_start
async def connect() -> None:
    clients.settings = Settings.from_env()
    clients.mongo = AsyncMongoClient(clients.settings.mongo_uri, tz_aware=True)
    clients.redis = redis.asyncio.Redis.from_url(clients.settings.redis_uri)


@on_worker_stop
async def disconnect() -> None:
    if clients.mongo is not None:
        await clients.mongo.close()
    if clients.redis is not None:
        await clients.redis.aclose()


def db() -> Any:
    assert clients.settings is not None, "worker start hook did not run"
    return clients.mongo[clients.settings.database]


async def next_attempt(event: Event, handler: str) -> int:
    """Count runs of ``handler`` on ``event`` (1 on the first attempt)."""
    assert clients.redis is not None
    return int(await clients.redis.incr(f"shop:attempts:{event.id}:{handler}"))


async def note(event: Event, handler: str, outcome: str, detail: str = "", attempt: int | None = None) -> None:
    """Record one run of ``handler`` on ``event`` in the timeline."""
    if attempt is None:
        attempt = await next_attempt(event, handler)
    await db().timeline.insert_one({
        "at": datetime.now(UTC), "event_id": str(event.id), "event": event.name,
        "handler": handler, "attempt": attempt, "outcome": outcome, "detail": detail,
        "write": event.metadata.get("write"),  # the demo's write that caused it (event_metadata)
    })


@model_event_handler("User", "created", name="shop.send_welcome")
async def send_welcome(event: Event) -> dict[str, str]:
    """Queue a welcome email (simulated: a document in ``outbox_emails``)."""
    email = event.data["email"]
    await db().outbox_emails.update_one(
        {"_id": f"welcome:{event.id}"},
        {"$setOnInsert": {"to": email, "subject": "Welcome!", "at": datetime.now(UTC)}},
        upsert=True,
    )
    await note(event, "shop.send_welcome", "ok", f"welcome email to {email}")
    return {"to": email}


@event_handler("user.updated", when="email", name="shop.confirm_email_change")
async def confirm_email_change(event: Event) -> None:
    old, new = event.changes["email"]
    await db().outbox_emails.update_one(
        {"_id": f"email-change:{event.id}"},
        {"$setOnInsert": {"to": new, "subject": f"Your email changed from {old}", "at": datetime.now(UTC)}},
        upsert=True,
    )
    await note(event, "shop.confirm_email_change", "ok", f"{old} -> {new}")


@event_handler("user.*", name="shop.invalidate_user_cache")
async def invalidate_user_cache(event: Event) -> None:
    assert clients.redis is not None
    removed = await clients.redis.delete(f"shop:cache:user:{event.object_id}")
    await note(event, "shop.invalidate_user_cache", "ok", f"cache key removed={removed}")


@model_event_handler("Order", "created", name="shop.count_orders")
async def count_orders(event: Event) -> int:
    """Keep a per-user order count ($addToSet of order ids: idempotent)."""
    user_id = event.data["user_id"]
    result = await db().order_counts.find_one_and_update(
        {"_id": user_id}, {"$addToSet": {"orders": event.object_id}}, upsert=True, return_document=True
    )
    count = len(result["orders"])
    await note(event, "shop.count_orders", "ok", f"user has {count} order(s)")
    return count


@event_handler("*", name="shop.audit")
async def audit(event: Event) -> None:
    """An audit log of every event with its diff."""
    await db().audit_log.update_one(
        {"_id": str(event.id)},
        {"$setOnInsert": {"event": event.name, "object_id": event.object_id,
                          # to_bson: order totals are Decimals, stored as Decimal128
                          "changes": {path.replace(".", "/"): to_bson(list(pair)) for path, pair in event.changes.items()},
                          "at": event.created_at}},
        upsert=True,
    )
    await note(event, "shop.audit", "ok", ", ".join(event.changes) or "-")


@event_handler("order.payment_reminder", name="shop.payment_reminder")
async def payment_reminder(event: Event) -> None:
    """The delayed reminder: sent only if the order is still unpaid."""
    order = await db().orders.find_one({"_id": event.object_id})
    status = order["status"] if order else "deleted"
    detail = "reminder email sent" if status == "created" else f"no reminder: order is {status}"
    await note(event, "shop.payment_reminder", "ok", detail)


@event_handler("order.paid", name="shop.charge_card",
               retry=RetryPolicy(max_retries=4, interval_start=0.3, interval_step=0.3, interval_max=1.0))
async def charge_card(event: Event) -> str:
    """A flaky payment gateway: times out twice, then succeeds."""
    attempt = await next_attempt(event, "shop.charge_card")
    if attempt <= 2:
        await note(event, "shop.charge_card", "error", "payment gateway timed out", attempt)
        raise TimeoutError("payment gateway timed out")
    await note(event, "shop.charge_card", "ok", f"charged {event.data['total']}", attempt)
    return "charged"


@event_handler("order.shipped", name="shop.notify_carrier",
               retry=RetryPolicy(max_retries=1, interval_start=0.3))
def notify_carrier(event: Event) -> str:
    """A carrier API that rejects every request until ``shop:carrier:fixed`` is set in Redis
    (a sync handler; shows the failed-job store, then a retry from it)."""
    settings = Settings.from_env()
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_uri)
    with redis.Redis.from_url(settings.redis_uri) as client, mongo:
        attempt = int(client.incr(f"shop:attempts:{event.id}:shop.notify_carrier"))
        fixed = bool(client.exists(CARRIER_FIXED))
        mongo[settings.database].timeline.insert_one({
            "at": datetime.now(UTC), "event_id": str(event.id), "event": event.name,
            "handler": "shop.notify_carrier", "attempt": attempt, "outcome": "ok" if fixed else "error",
            "detail": "carrier accepted the shipment" if fixed else "carrier API rejected the shipment",
            "write": event.metadata.get("write"),
        })
    if not fixed:
        raise RuntimeError(f"carrier API rejected the shipment (attempt {attempt})")
    return "accepted"
