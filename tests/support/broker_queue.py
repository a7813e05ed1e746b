"""What waits in a Redis broker list: the events of ormevents' messages, oldest first.

kombu LPUSHes a JSON envelope whose body is base64 JSON ``[args, kwargs, embed]``; an
``ormevents.dispatch`` carries one event (``args[0]``), an ``ormevents.dispatch_batch`` a list
of them. Shared by the tests that read the queue instead of running a worker.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import redis


def queued_events(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The events in ``queue``'s broker list, oldest first (a batch's in its order)."""
    events: list[dict[str, Any]] = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        first = json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0]
        events.extend(first if isinstance(first, list) else [first])
    return events


def queued_events_at(redis_uri: str, queue: str) -> list[dict[str, Any]]:
    """:func:`queued_events` through a client of its own for ``redis_uri``."""
    client = redis.Redis.from_url(redis_uri)
    try:
        return queued_events(client, queue)
    finally:
        client.close()
