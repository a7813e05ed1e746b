"""Handlers of the replay tests' workers (``ORMEVENTS_IMPORTS``): each run adds 1 to the event's
count in ``<queue>:replay:<handler>`` (a Redis hash keyed by event id). ``replay.audit`` and
``replay.created`` are only registered when ``REPLAY_NEW=1``: handlers added after the events were
written. ``replay.created`` listens to ``tally.created`` only, and fails (no retry) while
``<queue>:replay:fail`` exists."""

from __future__ import annotations

import os

import redis

from ormevents import Event
from ormevents.handlers import RetryPolicy, event_handler

QUEUE = os.environ.get("ORMEVENTS_QUEUE", "")
_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    found = _clients.get(os.getpid())
    if found is None:
        found = _clients[os.getpid()] = redis.Redis.from_url(os.environ["ORMEVENTS_REDIS_URL"])
    return found


def count(handler: str, event: Event) -> None:
    client().hincrby(f"{QUEUE}:replay:{handler}", str(event.id), 1)


@event_handler("tally.*", name="replay.billing")
def billing(event: Event) -> None:
    count("replay.billing", event)


if os.environ.get("REPLAY_NEW") == "1":

    @event_handler("tally.*", name="replay.audit")
    def audit(event: Event) -> None:
        count("replay.audit", event)

    @event_handler("tally.created", name="replay.created", retry=RetryPolicy(max_retries=0))
    def created(event: Event) -> None:
        if client().exists(f"{QUEUE}:replay:fail"):
            raise RuntimeError("failing as asked")
        count("replay.created", event)
