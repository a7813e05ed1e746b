"""The trailing clean-up of sent outbox records, in batches (MongoDB side).

A record handed to the broker is marked sent in Redis at once (with the message, atomically);
MongoDB learns of it here, in batches (every ``cleanup_interval``, default 1 s, at most 500
documents per ``bulk_write``), off the write path:

* an entry of a model document's ``_oe_outbox`` is removed, and ``_oe_pending_at`` recomputed
  (both fields removed when nothing is left), by one pipeline update per document; the event is
  kept as a history row in ``_oe_events`` (``sent_at``, ``expire_at`` = ``sent_at`` + the
  retention), unless the retention is 0;
* an ``_oe_events`` row loses ``pending_at``/``intent`` and gains ``sent_at``/``expire_at``
  (or is deleted when the retention is 0).

A failed clean-up keeps its records for the next round (bounded); the relay cleans up what a
process left behind. Once cleaned, the records' ids are passed to ``forget`` after
``forget_after`` seconds (the publisher then drops their sent marks).

Example::

    cleaner = Cleaner(lambda: database, history_seconds=7 * 86400)
    cleaner.add(records)          # after they were handed to the broker
    await cleaner.run()           # every second, from the dispatcher or the relay
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ...urls import redact_url
from .records import EVENTS_COLLECTION, OUTBOX_FIELD, PENDING_FIELD, PendingEvent, history_row, now

logger = logging.getLogger("ormevents.delivery.outbox.cleanup")
BATCH = 500
KEEP_AT_MOST = 100_000


def removal(ids: list[str]) -> list[dict[str, Any]]:
    """The pipeline update removing entries ``ids`` from a document's outbox (see module doc)."""
    remaining = {"$filter": {"input": {"$ifNull": [f"${OUTBOX_FIELD}", []]}, "as": "e",
                             "cond": {"$not": [{"$in": ["$$e._id", ids]}]}}}
    empty = {"$eq": [{"$size": f"${OUTBOX_FIELD}"}, 0]}
    return [{"$set": {OUTBOX_FIELD: remaining}},
            {"$set": {PENDING_FIELD: {"$cond": [empty, "$$REMOVE", {"$min": f"${OUTBOX_FIELD}.at"}]},
                      OUTBOX_FIELD: {"$cond": [empty, "$$REMOVE", f"${OUTBOX_FIELD}"]}}}]


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
        self._cleaned: deque[tuple[float, list[str]]] = deque()
        self._failing = False

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, records: Iterable[PendingEvent]) -> None:
        """Records handed to the broker (or found already sent), to clean up on the next run."""
        self._waiting.extend(records)
        if len(self._waiting) > KEEP_AT_MOST:  # MongoDB down for long: the relay cleans the rest later
            del self._waiting[: len(self._waiting) - KEEP_AT_MOST]

    async def run(self) -> int:
        """Clean up everything added so far; returns how many records were cleaned (0 on failure)."""
        await self._forget_due()
        records, self._waiting = self._waiting, []
        if not records:
            return 0
        try:
            await self._clean(self.database(), records)
        except Exception as error:  # keep them for the next round; the relay covers a dead process
            self._waiting[:0] = records
            if not self._failing:
                logger.warning("cleaning up %d sent outbox records failed (%s); retrying every round", len(records),
                               redact_url(repr(error)))
            self._failing = True
            return 0
        if self._failing:
            logger.info("outbox clean-up works again")
        self._failing = False
        if self.forget is not None:
            self._cleaned.append((time.monotonic() + self.forget_after, [r.id for r in records]))
        return len(records)

    async def _clean(self, database: Any, records: list[PendingEvent]) -> None:
        from pymongo import DeleteOne, InsertOne, UpdateOne

        sent_at = now()
        documents: dict[tuple[str, Any], list[PendingEvent]] = {}
        rows: list[PendingEvent] = []
        for record in records:
            if record.embedded:
                documents.setdefault((record.home, record.key), []).append(record)
            else:
                rows.append(record)
        by_home: dict[str, list[tuple[Any, list[PendingEvent]]]] = {}
        for (home, key), held in documents.items():
            by_home.setdefault(home, []).append((key, held))
        history: list[Any] = []
        for home, held_by in by_home.items():
            for start in range(0, len(held_by), BATCH):
                chunk = held_by[start:start + BATCH]
                operations = [UpdateOne({"_id": key, f"{OUTBOX_FIELD}._id": {"$in": [r.id for r in held]}},
                                        removal([r.id for r in held])) for key, held in chunk]
                await database[home].bulk_write(operations, ordered=False)
            if self.history_seconds != 0:
                history.extend(InsertOne(history_row(r, home, key, sent_at, self.history_seconds))
                               for key, held in held_by for r in held)
        marks: list[Any] = []
        for record in rows:
            if self.history_seconds == 0:
                marks.append(DeleteOne({"_id": record.key}))
                continue
            change: dict[str, Any] = {"$unset": {"pending_at": "", "intent": ""}, "$set": {"sent_at": sent_at}}
            if self.history_seconds is not None:
                change["$set"]["expire_at"] = _expiry(sent_at, self.history_seconds)
            marks.append(UpdateOne({"_id": record.key, "pending_at": {"$exists": True}}, change))
        await _bulk(database[EVENTS_COLLECTION], history + marks)

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
    """``bulk_write`` in batches, ignoring history rows that already exist (a re-published event)."""
    from pymongo.errors import BulkWriteError

    for start in range(0, len(operations), BATCH):
        try:
            await collection.bulk_write(operations[start:start + BATCH], ordered=False)
        except BulkWriteError as error:
            others = [e for e in error.details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise


def _expiry(sent_at: Any, seconds: float) -> Any:
    from datetime import timedelta

    return sent_at + timedelta(seconds=seconds)
