"""A delete that keeps its event: the ``deleted`` record, and the events still pending in the document.

Outside a transaction, the ``deleted`` row is written to ``_oe_events`` as an *intent* before the
delete: the relay publishes it only if the document is gone, and drops it otherwise (a writer
killed between the two leaves no phantom event). Inside one, it is a plain row of the
transaction. The delete requires the document to hold no pending entry; if it holds some (written
a moment ago, not yet cleaned up), they are copied to ``_oe_events`` first and the delete is
retried on exactly the entries copied, so it never takes an undelivered event with it. Nothing
deleted: the intent is removed and the caller's refusal check tells why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..delivery.outbox.records import EVENTS_COLLECTION, OUTBOX_FIELD, PENDING_FIELD, PendingEvent, moved


class Writer(Protocol):
    """What a delete needs of its :class:`~ormevents.model.storage.Unit`."""

    database: Any
    transactional: bool

    async def call(self, method: Callable[..., Awaitable[Any]], *args: Any, what: str, **options: Any) -> Any:
        """``await method(*args, **options)`` in the unit's session, driver errors translated."""


async def delete_with_record(unit: Writer, collection: str, condition: dict[str, Any], object_id: Any,
                             pending: PendingEvent, records: list[PendingEvent], what: str) -> Any:
    """Delete with its ``deleted`` record ``pending`` (see module doc); ``records`` receives the
    records to hand over after the commit (emptied when nothing was deleted)."""
    events, target = unit.database[EVENTS_COLLECTION], unit.database[collection]
    intent = not unit.transactional
    await unit.call(events.insert_one, pending.row(collection, object_id, intent=intent), what=what)
    result = await unit.call(target.delete_one, {**condition, PENDING_FIELD: {"$exists": False}}, what=what)
    copied = None
    for _ in range(10):  # the document still holds pending events: keep them, then delete it
        if result.deleted_count:
            break
        found = await unit.call(target.find_one, {"_id": condition["_id"], PENDING_FIELD: {"$exists": True}},
                                {OUTBOX_FIELD: 1}, what=what)
        if found is None:
            break
        entries = found.get(OUTBOX_FIELD) or {}
        if entries == copied:  # the entries are kept already: the document itself changed (refused)
            break
        kept = [moved(event_id, entry) for event_id, entry in entries.items()]
        await _keep_rows(unit, kept, collection, object_id, what)
        records[:0] = [r for r in kept if r not in records]  # written before the delete: handed over first
        copied = entries
        exactly = {OUTBOX_FIELD: entries} if OUTBOX_FIELD in found else {OUTBOX_FIELD: {"$exists": False}}
        result = await unit.call(target.delete_one, {**condition, **exactly}, what=what)
    if not result.deleted_count:
        await unit.call(events.delete_one, {"_id": pending.id}, what=what)
        del records[:]
    return result


async def _keep_rows(unit: Writer, kept: list[PendingEvent], collection: str, object_id: Any, what: str) -> None:
    from pymongo import UpdateOne

    if kept:
        operations = [UpdateOne({"_id": r.id}, {"$setOnInsert": r.row(collection, object_id)}, upsert=True)
                      for r in kept]
        await unit.call(unit.database[EVENTS_COLLECTION].bulk_write, operations, what=what)
