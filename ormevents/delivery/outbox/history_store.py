"""The event history's storage: sent events of model writes, in buckets per document (pure).

Layout (MongoDB)::

    _oe_history: {c: "<model collection>", o: <document id>, m: "<event model>", count: <entries>,
                  first: <lowest s>, last: <highest s>, expire_at?: ISODate,
                  s: [<write sequence>, ...], i: ["<event id>", ...], h: ["<summary JSON>", ...],
                  w: ["<event JSON>", ...]}          # parallel arrays: entry k is (s[k], i[k], h[k], w[k])
      index oe_history {c: 1, o: 1, first: 1};  index oe_ttl {expire_at: 1} expireAfterSeconds=0

Why buckets: a document's history is read by one index range over a handful of documents
(1,000 events are 10 buckets of :data:`BUCKET_SIZE`), not 1,000 documents; on SecantusDB that
is the difference between ~10 ms and ~60 ms for the fetch (measured, see ``docs/history.md``).
Why ``h``: a history read projects the summaries only (id, name, action, changes, metadata,
created_at: :func:`summary`), not the events' ``data`` (the whole document, each time): a third
of the bytes for a typical update. ``w`` (the full event) is read by replays. Parallel
top-level arrays rather than an array of entries: projecting ``{s, i, h}`` is a top-level
projection, measured 40% faster on SecantusDB than ``{"e.s", "e.i", "e.h"}``.
The clean-up (:mod:`.cleanup`) appends each round's sent entries of a document with one upsert
(``$push`` to a bucket with room, else a new one), or, when the round's first entry of the
document is its ``created`` event, inserts a new bucket: a new document normally has none yet,
and an insert costs the server a third of that upsert (0.6 against 2 ms on SecantusDB, measured).
A document may so get a second bucket with room (deleted and created again with the same
``_id``; or its ``created`` record cleaned up after a later one, when a broker outage left it to
the relay, or re-published): readers merge all of a document's buckets. Entries are appended in
hand-over order, so readers sort by ``s``; a re-published event may appear twice, so readers keep
the first copy of an id. ``w`` is the redacted event JSON the broker message carried, so redacted
fields stay redacted in the history.

Retention: a bucket expires when its newest entry does (``$max`` of ``expire_at``; a model kept
forever sets :data:`FOREVER_AT`, which the TTL monitor never reaches). Deletes and custom events
stay rows of ``_oe_events`` (with their own ``expire_at``); readers merge both.

Example::

    >>> from ormevents.events.event import Event
    >>> from ormevents.delivery.outbox.records import build_pending, now
    >>> record = build_pending(Event(name="order.updated"), home="orders", key=1)
    >>> [u._filter["c"] for u in bucket_updates([record], now(), 3600)]
    ['orders']
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .records import PendingEvent, document_key, expiry, summary_of

BUCKET_SIZE = 100
"""Entries per bucket (one may hold up to twice as many: a round's entries for one document go
in chunks of this size, each to a bucket that had room)."""
FOREVER_AT = datetime(9999, 12, 31, tzinfo=UTC)
"""The ``expire_at`` of a bucket kept forever."""


def bucket_updates(records: Iterable[PendingEvent], sent_at: datetime, default_seconds: float | None) -> list[Any]:
    """One write per document appending its sent embedded ``records`` (see module doc): an
    upsert, or an insert when the first of them is the document's ``created`` event.

    ``default_seconds``: the retention of records whose model sets none (``None``: forever,
    ``0``: not kept).
    """
    from pymongo import InsertOne, UpdateOne

    grouped: dict[Any, tuple[PendingEvent, list[PendingEvent], list[datetime]]] = {}
    for record in records:
        seconds = record.history_seconds(default_seconds)
        if seconds == 0:
            continue
        until = expiry(sent_at, seconds) or FOREVER_AT
        first, held, ends = grouped.setdefault(document_key(record.home, record.key), (record, [], []))
        held.append(record)
        ends.append(until)
    updates: list[Any] = []
    for first, held, ends in grouped.values():
        held.sort(key=lambda r: r.seq)
        model = first.name.partition(".")[0]
        for start in range(0, len(held), BUCKET_SIZE):
            chunk = held[start:start + BUCKET_SIZE]
            arrays = {"s": [r.seq for r in chunk], "i": [r.id for r in chunk], "h": [r.summary or summary(r.wire) for r in chunk],
                      "w": [r.wire for r in chunk]}
            if start == 0 and chunk[0].name.partition(".")[2] == "created":
                updates.append(InsertOne({"c": first.home, "o": first.key, "m": model, "count": len(chunk),
                                          "first": chunk[0].seq, "last": chunk[-1].seq, "expire_at": max(ends),
                                          **arrays}))
                continue
            updates.append(UpdateOne(
                {"c": first.home, "o": first.key, "count": {"$lt": BUCKET_SIZE}},
                {"$push": {name: {"$each": values} for name, values in arrays.items()}, "$inc": {"count": len(chunk)},
                 "$min": {"first": chunk[0].seq}, "$max": {"last": chunk[-1].seq, "expire_at": max(ends)},
                 "$setOnInsert": {"m": model}},
                upsert=True,
            ))
    return updates


def summary(wire: str) -> str:
    """The summary JSON of event JSON ``wire`` (:data:`~.records.SUMMARY_KEYS`).

    Example::

        >>> summary('{"id":"1","name":"a.b","data":{"x":1},"changes":{}}')
        '{"id":"1","name":"a.b","changes":{}}'
    """
    decoded: dict[str, Any] = json.loads(wire)
    return summary_of(decoded)
