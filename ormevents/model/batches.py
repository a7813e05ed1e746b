"""Batch writes of the unit of work (:mod:`.storage`): many documents per round trip, each with its
own outbox record, and one hand-off for the whole batch.

* :func:`update_each` sends one conditional ``UpdateOne`` per document in one unordered
  ``bulk_write``; each update carries that document's outbox entry, so a document's write and its
  event are one single-document write (atomic). It reports which updates applied: when the
  server matched all of them (the common case) that is all; otherwise the batch's documents are
  read back and an update applied exactly where its own outbox entry (keyed by its event id) is
  there. Without an outbox (eager, recording publishers) the updates are sent one by one,
  concurrently, and each result says.
* :func:`insert_all` inserts documents carrying their outbox fields with one ordered
  ``insert_many``; after a failure part-way (a duplicate key), the records of the documents
  inserted before it are still handed over.
* :func:`hand_off` hands the records of a batch over in one go (the outbox's dispatcher publishes
  them pipelined), or publishes the events with ``publish_many`` (inline publishers), or keeps
  them for the commit inside a transaction.
* Every driver call goes through :meth:`Unit.call` (typed errors); each batch's write and its
  hand-off run shielded from the caller's cancellation, like a single write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..delivery.base import PublishedEvent
from ..delivery.outbox.records import OUTBOX_FIELD, PENDING_FIELD, PendingEvent
from ..events.event import Event
from .shield import run_shielded
from .storage import Unit

_CONCURRENCY = 32  # updates in flight at once without an outbox


@dataclass
class Write:
    """One document's conditional update: ``condition`` (its ``_id`` and compare-and-set
    conditions), ``update`` (``$set``/``$unset`` of the changed paths), its record and event."""

    condition: dict[str, Any]
    update: dict[str, Any]
    pending: PendingEvent | None
    event: Event | None


async def update_each(unit: Unit, collection: str, writes: Sequence[Write], what: str) -> list[bool]:
    """Apply ``writes`` (see module doc) and hand over the records of those that applied;
    returns, per write, whether it applied. A refused write changed nothing. A write that fails
    (a duplicate key of a unique index) does not stop the others: the records of those that
    applied are handed over, then the first failure is raised."""
    if not writes:
        return []
    if any(write.pending is not None for write in writes):
        await unit.indexed(collection)
    sent: list[list[str]] = []
    updates = []
    for write in writes:
        update, dropped = unit.with_record(collection, write.condition["_id"], write.update, write.pending)
        updates.append(update)
        sent.append(dropped)

    async def send() -> tuple[list[bool], BaseException | None]:
        if unit.outbox is None:
            applied, failure = await _one_by_one(unit, collection, writes, updates, what)
        else:
            applied, failure = await _bulk(unit, collection, writes, updates, what)
        for write, dropped, ok in zip(writes, sent, applied):
            if ok and dropped and unit.outbox is not None:
                unit.outbox.dropped_entries(collection, write.condition["_id"], dropped)
        chosen = [write for write, ok in zip(writes, applied) if ok]
        error = await hand_off(unit, [w.pending for w in chosen if w.pending is not None],
                               [w.event for w in chosen if w.event is not None])
        return applied, failure or error

    applied, error = await run_shielded(send(), None)
    if error is not None:
        raise error
    result: list[bool] = applied
    return result


async def _bulk(unit: Unit, collection: str, writes: Sequence[Write], updates: list[dict[str, Any]],
                what: str) -> tuple[list[bool], BaseException | None]:
    from pymongo import UpdateOne
    from pymongo.errors import BulkWriteError

    target = unit.database[collection]
    operations = [UpdateOne(write.condition, update) for write, update in zip(writes, updates)]
    try:
        result = await unit.call(target.bulk_write, operations, ordered=False, what=what)
    except BulkWriteError as error:  # some failed; the others applied: read back which below
        failure: BaseException | None = _first_write_error(error)
    else:
        if result.matched_count == len(writes):
            return [True] * len(writes), None
        failure = None
    keys = [write.condition["_id"] for write in writes]
    found = {}
    async for document in target.find({"_id": {"$in": keys}}, {OUTBOX_FIELD: 1}, **unit.session_options):
        found[_hashable(document["_id"])] = document.get(OUTBOX_FIELD) or {}
    return [write.pending is not None and write.pending.id in found.get(_hashable(write.condition["_id"]), {})
            for write in writes], failure


async def _one_by_one(unit: Unit, collection: str, writes: Sequence[Write], updates: list[dict[str, Any]],
                      what: str) -> tuple[list[bool], BaseException | None]:
    target = unit.database[collection]
    gate = asyncio.Semaphore(_CONCURRENCY if unit.session is None else 1)  # a driver session: one call at a time

    async def one(write: Write, update: dict[str, Any]) -> bool:
        async with gate:
            result = await unit.call(target.update_one, write.condition, update, what=what, document=update)
        return bool(result.matched_count)

    results = await asyncio.gather(*(one(write, update) for write, update in zip(writes, updates)),
                                   return_exceptions=True)
    failures = [result for result in results if isinstance(result, BaseException)]
    return [result is True for result in results], failures[0] if failures else None


async def insert_all(unit: Unit, collection: str, documents: list[dict[str, Any]],
                     records: list[PendingEvent | None], events: list[Event | None],
                     what: str) -> tuple[int, BaseException | None]:
    """Insert ``documents`` in order, each with its record in its outbox fields; hand over the
    records (or events) of those inserted. Returns how many were inserted and the driver error
    (e.g. a duplicate key) that stopped the rest, for the caller to raise."""
    if any(record is not None for record in records):
        await unit.indexed(collection)
    stored = [document if record is None else
              {**document, OUTBOX_FIELD: {record.id: record.entry()}, PENDING_FIELD: record.at}
              for document, record in zip(documents, records)]
    target = unit.database[collection]

    async def send() -> tuple[tuple[int, BaseException | None], BaseException | None]:
        from pymongo.errors import BulkWriteError

        failure: BaseException | None = None
        try:
            await unit.call(target.insert_many, stored, ordered=True, what=what)
            inserted = len(stored)
        except BulkWriteError as error:
            inserted, failure = int(error.details.get("nInserted", 0)), error
        publish_error = await hand_off(unit, [r for r in records[:inserted] if r is not None],
                                       [e for e in events[:inserted] if e is not None])
        return (inserted, failure), publish_error

    (inserted, failure), error = await run_shielded(send(), None)
    if error is not None and failure is None:
        failure = error
    return inserted, failure


async def hand_off(unit: Unit, records: list[PendingEvent], events: list[Event]) -> BaseException | None:
    """Hand over the records (outbox) or the events (inline publisher) of a batch that committed;
    inside a transaction, keep them for its commit. Returns an inline publisher's error."""
    if unit.transactional:
        unit.records.extend(records)
        if unit.outbox is None:
            unit.events.extend(PublishedEvent(event) for event in events)
        return None
    if unit.outbox is not None:
        if records:
            unit.outbox.submit(records)
        return None
    if not events:
        return None
    try:
        await unit.publisher.publish_many(events)
    except Exception as error:  # the writes stand: the caller learns of it afterwards
        return error
    return None


def _first_write_error(error: Any) -> BaseException:
    """The first failed write of a ``BulkWriteError`` as the error one ``update_one`` raises
    (``DuplicateKeyError`` for a unique index), the bulk error as its cause."""
    from pymongo.errors import DuplicateKeyError, WriteError

    first = (error.details.get("writeErrors") or [{}])[0]
    if not first:
        return error  # type: ignore[no-any-return]
    kind = DuplicateKeyError if first.get("code") == 11000 else WriteError
    single = kind(first.get("errmsg", str(error)), first.get("code"), first)
    single.__cause__ = error
    return single


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (dict, list)) else value
