"""Handlers that take a MongoDB session (the inbox), for the exactly-once delivery tests.

Imported by their worker only (``ORMEVENTS_IMPORTS``, with ``ORMEVENTS_MONGO_URL`` and
``ORMEVENTS_DATABASE`` set): a worker without a MongoDB refuses to start with these. Each effect
is an ``$inc`` of ``applied`` on ``effects/<event id>``, in the handler's transaction, so a
document with ``applied == 2`` is an effect applied twice. Calls are recorded in Redis as in
:mod:`tests.integration.delivery_handlers`.
"""

from __future__ import annotations

import os
from typing import Any

from ormevents import Event
from ormevents.handlers import event_handler
from ormevents.handlers.retry import RetryPolicy
from tests.integration.delivery_handlers import arecord, record

DATABASE = os.environ.get("ORMEVENTS_DATABASE", "")


@event_handler("inbox.credit", name="t.inbox_async")
async def credit(event: Event, session: Any) -> dict[str, int]:
    """Credits once per event; returns the amount (kept in the inbox record)."""
    effects = session.client[DATABASE]["effects"]
    await effects.update_one({"_id": f"{event.id}:async"}, {"$inc": {"applied": 1}}, upsert=True, session=session)
    await arecord("t.inbox_async", event)
    return {"credited": int(event.data.get("amount", 1))}


@event_handler("inbox.credit", name="t.inbox_sync")
def credit_sync(event: Event, session: Any) -> str:
    """The same effect from a sync handler (a pymongo ``ClientSession``)."""
    effects = session.client[DATABASE]["effects"]
    effects.update_one({"_id": f"{event.id}:sync"}, {"$inc": {"applied": 1}}, upsert=True, session=session)
    record("t.inbox_sync", event)
    return "credited"


@event_handler("inbox.flaky", name="t.inbox_flaky",
               retry=RetryPolicy(max_retries=2, interval_start=0.1, interval_step=0, interval_max=0.1))
def flaky_credit(event: Event, session: Any) -> None:
    """Writes its effect, then fails on its first call: the transaction must leave nothing behind."""
    effects = session.client[DATABASE]["effects"]
    effects.update_one({"_id": f"{event.id}:flaky"}, {"$inc": {"applied": 1}}, upsert=True, session=session)
    if record("t.inbox_flaky", event) == 1:
        raise RuntimeError("failed after writing")

