"""The trailing clean-up of sent outbox records, in batches (MongoDB side).

A record handed to the broker is marked sent in Redis at once (with the message, atomically);
MongoDB learns of it here, in batches (every ``cleanup_interval``, default 1 s, at most 500
documents per ``bulk_write``), off the write path:

* an entry of a model document's ``_oe_outbox`` is removed, and ``_oe_pending_at`` recomputed
  (both fields removed when nothing is left), by one pipeline update per document, unless the
  document's next write already dropped it (:meth:`Cleaner.sent` / :meth:`Cleaner.dropped`);
  the event is appended to the document's history buckets in ``_oe_history``
  (:mod:`.history_store`; expiring ``sent_at`` + the retention), unless the retention is 0;
* an ``_oe_events`` row loses ``pending_at``/``intent`` and gains ``sent_at``/``expire_at``
  (or is deleted when the retention is 0).

The retention is the record's model's (``history_days``) when it sets one, else ``history_seconds``.

A failed clean-up keeps its records for the next round (bounded); the relay cleans up what a
process left behind. Once cleaned, the records' ids are passed to ``forget`` after
``forget_after`` seconds (the publisher then drops their sent marks).

Example::

    cleaner = Cleaner(lambda: database, history_seconds=7 * 86400)
    cleaner.add(records)          # after they were handed to the broker
    await cleaner.run()           # every second, from the dispatcher or the relay
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ...urls import redact_url
from .history_store import bucket_updates
from .records import (
    EVENTS_COLLECTION,
    HISTORY_COLLECTION,
    OUTBOX_FIELD,
    PENDING_FIELD,
    PendingEvent,
    document_key,
    expiry,
    now,
)

logger = logging.getLogger("ormevents.delivery.outbox.cleanup")
BATCH = 500
KEEP_AT_MOST = 100_000


def removal(ids: list[str]) -> list[dict[str, Any]]:
    """The pipeline update removing entries ``ids`` from a document's outbox and setting
    ``_oe_pending_at`` to the oldest entry left (both fields removed when none is left)."""
    entries = {"$objectToArray": {"$ifNull": [f"${OUTBOX_FIELD}", {}]}}
    empty = {"$eq": [{"$size": entries}, 0]}
    oldest = {"$min": {"$map": {"input": entries, "as": "e", "in": "$$e.v.at"}}}
    recompute = {"$set": {PENDING_FIELD: {"$cond": [empty, "$$REMOVE", oldest]},
                          OUTBOX_FIELD: {"$cond": [empty, "$$REMOVE", f"${OUTBOX_FIELD}"]}}}
    return [{"$unset": [f"{OUTBOX_FIELD}.{i}" for i in ids]}, recompute] if ids else [recompute]


class Cleaner:
    """Batched MongoDB clean-up of sent records (see module doc).

    ``database`` returns the database to use (called on the loop that cleans);
    ``history_seconds``: retention of the history rows (``None``: forever, ``0``: none).
    """

    def __init__(self, database: Callable[[], Any], history_seconds: float | None = 7 * 24 * 3600,
                 forget: Callable[[list[str]], Awaitable[None]] | None = None, forget_after: float = 60.0) -> None:
        self.database = database
        self.history_seconds = history_seconds
        self.forget = forget
        self.forget_after = forget_after
        self._waiting: list[PendingEvent] = []
        self._by_document: dict[tuple[str, Any], list[str]] = {}
        self._dropped: set[str] = set()
        self._recompute: set[tuple[str, Any]] = set()
        self._cleaned: deque[tuple[float, list[str]]] = deque()
        self._cleaning: list[PendingEvent] = []
        self._failing = False
        self._running: asyncio.Lock | None = None  # created on the loop that cleans

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, records: Iterable[PendingEvent]) -> None:
        """Records handed to the broker (or found already sent), to clean up on the next run."""
        for record in records:
            self._waiting.append(record)
            if record.embedded:
                try:
                    self._by_document.setdefault((record.home, record.key), []).append(record.id)
                except TypeError:  # an unhashable _id: cleaned up by the next run only
                    pass
        if len(self._waiting) > KEEP_AT_MOST:  # MongoDB down for long: the relay cleans the rest later
            del self._waiting[: len(self._waiting) - KEEP_AT_MOST]

    def sent(self, home: str, key: Any) -> list[str]:
        """Ids of the entries of document ``key`` in ``home`` handed over and not yet cleaned up:
        the document's next write may drop them itself (then call :meth:`dropped`)."""
        try:
            return list(self._by_document.get((home, key), ()))
        except TypeError:
            return []

    def dropped(self, home: str, key: Any, ids: list[str]) -> None:
        """A write of the document removed entries ``ids``: only their history rows are left to write."""
        self._dropped.update(ids)
        try:
            held = self._by_document.get((home, key))
        except TypeError:
            return
        if held is not None:
            gone = set(ids)
            held[:] = [event_id for event_id in held if event_id not in gone]

    def in_flight(self, home: str, key: Any) -> list[PendingEvent]:
        """The records of document ``key`` of ``home`` handed over and not yet in the history (a
        write of the document may have dropped them from it already: readers merge these)."""
        return [r for r in (*self._waiting, *self._cleaning) if r.embedded and r.home == home and r.key == key]

    def recompute(self, home: str, key: Any) -> None:
        """Set ``_oe_pending_at`` of document ``key`` exactly on the next run (it only moves down on writes)."""
        self._recompute.add((home, key))

    async def run(self) -> int:
        """Clean up everything added so far; returns how many records were cleaned (0 on failure).
        A run started while another is in progress waits for it (so ``flush(cleanup=True)`` returns
        only once the periodic run that took the records finished)."""
        if self._running is None:
            self._running = asyncio.Lock()
        async with self._running:
            return await self._run()

    async def _run(self) -> int:
        await self._forget_due()
        records, self._waiting = self._waiting, []
        dropped, self._dropped = self._dropped, set()
        recompute, self._recompute = self._recompute, set()
        if not records and not recompute:
            return 0
        self._cleaning = records  # still droppable by a write meanwhile: the history is written first
        try:
            await self._clean(self.database(), records, dropped, recompute)
        except Exception as error:  # keep them for the next round; the relay covers a dead process
            self._cleaning = []
            self._waiting[:0] = records
            del self._waiting[: max(0, len(self._waiting) - KEEP_AT_MOST)]
            self._dropped |= dropped
            self._recompute |= recompute
            if not self._failing:
                logger.warning("cleaning up %d sent outbox records failed (%s); retrying every round", len(records),
                               redact_url(repr(error)))
            self._failing = True
            return 0
        self._cleaning = []
        self._cleaned_up(records)
        if self._failing:
            logger.info("outbox clean-up works again")
        self._failing = False
        if self.forget is not None:
            self._cleaned.append((time.monotonic() + self.forget_after, [r.id for r in records]))
        return len(records)

    def _cleaned_up(self, records: list[PendingEvent]) -> None:
        """``records`` left their documents: a write no longer has them to drop."""
        gone: dict[Any, set[str]] = {}
        for record in records:
            if record.embedded:
                gone.setdefault(document_key(record.home, record.key), set()).add(record.id)
        for key, ids in gone.items():
            held = self._by_document.get(key)
            if held is not None:
                held[:] = [event_id for event_id in held if event_id not in ids]
                if not held:
                    del self._by_document[key]

    async def _clean(self, database: Any, records: list[PendingEvent], dropped: set[str],
                     recompute: set[tuple[str, Any]]) -> None:
        from pymongo import DeleteOne, UpdateOne

        sent_at = now()
        grouped: dict[Any, tuple[str, Any, list[PendingEvent]]] = {}
        rows: list[PendingEvent] = []
        embedded: list[PendingEvent] = []
        for record in records:
            if not record.embedded:
                rows.append(record)
                continue
            embedded.append(record)
            if record.id not in dropped:
                grouped.setdefault(document_key(record.home, record.key), (record.home, record.key, []))[2].append(record)
        history = bucket_updates(embedded, sent_at, self.history_seconds)
        if history:  # before the entries leave their documents: a reader sees each in one place at least
            await _bulk(database[HISTORY_COLLECTION], history)
        for home, key in recompute:
            grouped.setdefault(document_key(home, key), (home, key, []))
        documents: dict[str, list[tuple[Any, list[PendingEvent]]]] = {}
        for home, key, held in grouped.values():
            documents.setdefault(home, []).append((key, held))
        for home, held_by in documents.items():
            for start in range(0, len(held_by), BATCH):
                operations = [UpdateOne({"_id": key}, removal([r.id for r in held]))
                              for key, held in held_by[start:start + BATCH]]
                await database[home].bulk_write(operations, ordered=False)
        marks: list[Any] = []
        for record in rows:
            seconds = record.history_seconds(self.history_seconds)
            if seconds == 0:
                marks.append(DeleteOne({"_id": record.key}))
                continue
            # keyed by _id alone (SecantusDB looks a row up by index only for such a filter), and
            # idempotent: a row marked twice (a re-published event) keeps its first sent time
            change: dict[str, Any] = {"$unset": {"pending_at": "", "intent": ""}, "$min": {"sent_at": sent_at}}
            if seconds is not None:
                change["$min"]["expire_at"] = expiry(sent_at, seconds)
            marks.append(UpdateOne({"_id": record.key}, change))
        await _bulk(database[EVENTS_COLLECTION], marks)

    async def _forget_due(self) -> None:
        due: list[str] = []
        moment = time.monotonic()
        while self._cleaned and self._cleaned[0][0] <= moment:
            due.extend(self._cleaned.popleft()[1])
        if due and self.forget is not None:
            try:
                await self.forget(due)
            except Exception as error:  # the marks expire by age anyway
                logger.debug("could not drop %d sent marks: %r", len(due), error)


async def _bulk(collection: Any, operations: list[Any]) -> None:
    """``bulk_write`` in batches, ignoring rows that already exist (a re-published event)."""
    from pymongo.errors import BulkWriteError

    for start in range(0, len(operations), BATCH):
        try:
            await collection.bulk_write(operations[start:start + BATCH], ordered=False)
        except BulkWriteError as error:
            others = [e for e in error.details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise
