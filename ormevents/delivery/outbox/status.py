"""How the outbox stands: pending events per collection, the oldest one's age, the relay's lag.

What ``ormevents outbox status [--json]`` prints and the relay exports as metrics
(``ormevents_outbox_pending{collection}``, ``ormevents_outbox_oldest_age_seconds{collection}``,
``ormevents_relay_lag_seconds``). Pending counts come from the sparse ``oe_pending`` indexes
(about a millisecond per idle collection); the relay's passes from Redis.

* ``pending``: events recorded and not yet known to be on the broker (a record handed over
  stays counted until the next clean-up, about a second later);
* ``oldest_age_seconds``: the age of the oldest of them; above the relay's grace period (5 s)
  plus its poll (1 s), events are waiting on the relay (broker down, no relay running);
* ``relay.lag_seconds``: seconds since the least recent relay pass over a collection (``None``:
  no relay ever ran on this queue); ``relay.holders``: who holds each collection's lease.

Example::

    status = await outbox_status(database, redis_client, Keys("shop:events"))
    status["pending"], status["oldest_age_seconds"], status["relay"]["lag_seconds"]
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from ...jobs.keys import Keys
from ...jobs.replies import reply_text
from ..metrics import metrics
from .records import EVENTS_COLLECTION, OUTBOX_FIELD, PENDING_FIELD
from .relay import outbox_collections

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def collection_status(database: Any, name: str) -> dict[str, Any]:
    """``{"pending": events, "documents": n, "oldest_age_seconds": s | None}`` of one collection."""
    field = "pending_at" if name == EVENTS_COLLECTION else PENDING_FIELD
    events: Any = 1 if name == EVENTS_COLLECTION else {"$size": {"$objectToArray": {"$ifNull": [f"${OUTBOX_FIELD}", {}]}}}
    pipeline: list[dict[str, Any]] = [{"$match": {field: {"$gt": _EPOCH}}},
                {"$group": {"_id": None, "documents": {"$sum": 1}, "events": {"$sum": events}, "oldest": {"$min": f"${field}"}}}]
    cursor = await _aggregate(database[name], pipeline)
    rows = [row async for row in cursor]
    if not rows:
        return {"pending": 0, "documents": 0, "oldest_age_seconds": None}
    oldest = rows[0]["oldest"]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = None if oldest is None else max(0.0, round(time.time() - oldest.timestamp(), 3))
    return {"pending": int(rows[0]["events"]), "documents": int(rows[0]["documents"]), "oldest_age_seconds": age}


async def outbox_status(database: Any, redis: Any, keys: Keys) -> dict[str, Any]:
    """The status of every outbox collection of ``database`` and of the relays of ``keys``' queue."""
    collections = {name: await collection_status(database, name) for name in await outbox_collections(database)}
    passes = {reply_text(k): json.loads(v) for k, v in (await redis.hgetall(keys.relay_passes)).items()}
    holders = {}
    for name in collections:
        holder = await redis.get(keys.relay_lease(name))
        holders[name] = None if holder is None else reply_text(holder)
    ages = [c["oldest_age_seconds"] for c in collections.values() if c["oldest_age_seconds"] is not None]
    seen = [passes[name]["at"] for name in collections if name in passes]
    lag = round(time.time() - min(seen), 3) if seen and len(seen) == len(collections) else None
    return {
        "pending": sum(c["pending"] for c in collections.values()),
        "oldest_age_seconds": max(ages) if ages else None,
        "collections": collections,
        "relay": {"lag_seconds": lag, "holders": holders, "passes": {n: passes[n] for n in collections if n in passes}},
    }


def export(status: dict[str, Any]) -> None:
    """Set the outbox gauges (see module doc) from a :func:`outbox_status` result."""
    gauges = metrics()
    for name, collection in status["collections"].items():
        gauges.outbox_pending.labels(collection=name).set(collection["pending"])
        gauges.outbox_oldest_age.labels(collection=name).set(collection["oldest_age_seconds"] or 0.0)
    if status["relay"]["lag_seconds"] is not None:
        gauges.relay_lag.set(status["relay"]["lag_seconds"])


async def _aggregate(collection: Any, pipeline: list[dict[str, Any]]) -> Any:
    cursor = collection.aggregate(pipeline)
    return await cursor if hasattr(cursor, "__await__") and not hasattr(cursor, "__aiter__") else cursor
