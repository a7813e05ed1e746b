"""The handler the fault scenarios' workers import (``ORMEVENTS_IMPORTS=tests.faults.fault_handlers``).

Every ``fault_note.*`` event's effect is one increment of a counter keyed by the event id, so the
test can count what was lost (no counter) and what was applied twice (a counter above 1). The
counters live where the scenario's fault is not: MongoDB (``FAULT_EFFECTS=mongo``, the default;
collection ``fault_effects`` of ``ORMEVENTS_DATABASE``) or Redis (``FAULT_EFFECTS=redis``; the
hash ``faults:effects:<run>`` on ``FAULT_EFFECTS_REDIS``).
"""

from __future__ import annotations

import os
from typing import Any

from ormevents import Event
from ormevents.handlers import event_handler

_clients: dict[str, Any] = {}


def _client(kind: str) -> Any:
    key = f"{kind}:{os.getpid()}"
    if key not in _clients:
        if kind == "redis":
            import redis

            _clients[key] = redis.Redis.from_url(os.environ["FAULT_EFFECTS_REDIS"], socket_timeout=5)
        else:
            from pymongo import MongoClient

            _clients[key] = MongoClient(os.environ["FAULT_EFFECTS_MONGO"], serverSelectionTimeoutMS=5000)
    return _clients[key]


@event_handler("fault_note.*", name="faults.effect")
def effect(event: Event) -> None:
    run = str(event.data.get("run"))
    if os.environ.get("FAULT_EFFECTS", "mongo") == "redis":
        _client("redis").hincrby(f"faults:effects:{run}", str(event.id), 1)
    else:
        database = _client("mongo")[os.environ["ORMEVENTS_DATABASE"]]
        database["fault_effects"].update_one({"_id": f"{run}:{event.id}"}, {"$inc": {"n": 1}}, upsert=True)
