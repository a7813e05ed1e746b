"""Handlers of the replay tests' workers (``ORMEVENTS_IMPORTS``): each run adds 1 to the event's
count in ``<queue>:replay:<handler>`` (a Redis hash keyed by event id). ``replay.audit`` is only
registered when ``REPLAY_NEW=1``: a handler added after the events were written."""

from __future__ import annotations

import os

import redis

from ormevents import Event
from ormevents.handlers import event_handler

QUEUE = os.environ.get("ORMEVENTS_QUEUE", "")
_clients: dict[int, redis.Redis] = {}


def count(handler: str, event: Event) -> None:
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["ORMEVENTS_REDIS_URL"])
    client.hincrby(f"{QUEUE}:replay:{handler}", str(event.id), 1)


@event_handler("tally.*", name="replay.billing")
def billing(event: Event) -> None:
    count("replay.billing", event)


if os.environ.get("REPLAY_NEW") == "1":

    @event_handler("tally.*", name="replay.audit")
    def audit(event: Event) -> None:
        count("replay.audit", event)
