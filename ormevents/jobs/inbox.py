"""The records of the MongoDB inbox: which handler effects committed, and what they returned.

A handler that takes a session (``async def h(event, session)``) runs in a MongoDB transaction
that first inserts ``{_id: event.idempotency_key(handler), at}`` into the ``_oe_inbox``
collection of the worker's database (:mod:`ormevents.delivery.celery.inbox`). The record commits
with the handler's writes or not at all, so a second delivery of the same (event, handler) hits
the unique ``_id`` (``DuplicateKeyError``) and never applies the effect again. When the handler
returned something (a result, chained events), the record keeps it (``result``, JSON text), so
a redelivery after a crash between the commit and the Redis bookkeeping still records the same
result and publishes the same chained events. Records expire after :data:`INBOX_TTL` seconds.

Example::

    >>> record = inbox_record("6f1e...:billing.charge", at=datetime(2024, 1, 1, tzinfo=UTC))
    >>> record["_id"]
    '6f1e...:billing.charge'
    >>> decode_outcome({"result": encode_outcome({"ok": 1}, [])})
    ({'ok': 1}, [])
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..events.event import Event

INBOX_COLLECTION = "_oe_inbox"
"""The collection of inbox records, in the worker's database (``ORMEVENTS_DATABASE``)."""

INBOX_TTL = 30 * 24 * 3600
"""Seconds an inbox record is kept (a TTL index on ``at``): longer than any redelivery or replay."""


def inbox_record(key: str, at: datetime | None = None) -> dict[str, Any]:
    """The record inserted as the first statement of a handler's transaction."""
    return {"_id": key, "at": at or datetime.now(UTC)}


def encode_outcome(value: Any, children: list[Event]) -> str:
    """What a handler returned, as kept in its inbox record (the JSON value and chained events)."""
    return json.dumps({"value": value, "children": [child.to_dict() for child in children]}, separators=(",", ":"))


def decode_outcome(record: dict[str, Any] | None) -> tuple[Any, list[Event]]:
    """``(value, chained events)`` kept in an inbox record (``(None, [])`` when it kept none)."""
    text = (record or {}).get("result")
    if not isinstance(text, str):
        return None, []
    outcome = json.loads(text)
    return outcome.get("value"), [Event.from_dict(wire) for wire in outcome.get("children") or []]
