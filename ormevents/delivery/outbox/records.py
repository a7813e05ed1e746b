"""Outbox records: what a write stores next to its data so its event cannot be lost (pure, no I/O).

Layout (MongoDB)::

    model document, while events are pending:
      _oe_outbox:     {"<event id>": {n: "user.updated", at: ISODate, s: <write sequence>, w: "<event JSON>",
                                      due?: <epoch s>, r?: <history retention s; -1 forever>}}
      _oe_pending_at: ISODate            # <= min(_oe_outbox.*.at); absent when nothing is pending
      index oe_pending {_oe_pending_at: 1} sparse

An object keyed by event id, not an array: one update can add its own entry (``$set
_oe_outbox.<id>``) and drop entries already handed over (``$unset _oe_outbox.<id>``) without a
path conflict, so a document written again and again carries only the entries still in flight
(an array would grow until the next clean-up, and every write would rewrite it).
``_oe_pending_at`` only ever moves down on a write (``$min``); the clean-up sets it exactly.

    _oe_events (deletes and custom events, pending then sent):
      {_id: "<event id>", n, at, s, w, due?, r?, c: "<model collection>", o: <document id>,
       pending_at?: ISODate, intent?: true, sent_at?: ISODate, expire_at?: ISODate}
      index oe_pending {pending_at: 1} sparse;  index oe_ttl {expire_at: 1} expireAfterSeconds=0;
      index oe_history {c: 1, o: 1, s: 1}

    _oe_history (the sent events of model writes, in buckets: :mod:`.history_store`)

``s`` is the write sequence (:func:`next_sequence`): nanoseconds since the epoch, strictly
increasing in a process, so the history sorts a document's events in write order. ``r`` is the
model's own history retention (``history_days``); without it the process's ``history_seconds``
applies.

``w`` is :meth:`Event.to_json` (redacted, with the trace context), the exact body the broker
message carries. An ``intent`` row is written *before* a delete outside a transaction: the relay
publishes it only if the document is gone, and drops it otherwise.

Example::

    >>> from ormevents.events.event import Event
    >>> pending = build_pending(Event(name="user.created"), home="users", key=1)
    >>> sorted(pending.entry())
    ['at', 'n', 's', 'w']
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ...errors import EventTooLargeError
from ...events import codec
from ...events.event import Event, wire_json
from ..tracing import with_trace_context

OUTBOX_FIELD = "_oe_outbox"
PENDING_FIELD = "_oe_pending_at"
EVENTS_COLLECTION = "_oe_events"
HISTORY_COLLECTION = "_oe_history"
HIDDEN_FIELDS = (OUTBOX_FIELD, PENDING_FIELD)
HIDDEN_PROJECTION: dict[str, int] = {OUTBOX_FIELD: 0, PENDING_FIELD: 0}
"""The projection model reads use: a model never sees its outbox."""
INDEX_NAME = "oe_pending"
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
FOREVER = -1.0
"""The ``retention`` of a record kept in the history forever."""
_last_sequence = [0]
_sequence_lock = threading.Lock()


def next_sequence() -> int:
    """The next write sequence: ``time.time_ns()``, or one more than the last one given out by
    this process when the clock has not moved (or went back), so it never repeats here."""
    with _sequence_lock:
        value = max(time.time_ns(), _last_sequence[0] + 1)
        _last_sequence[0] = value
        return value


def indexes(collection: str) -> list[tuple[list[tuple[str, int]], dict[str, Any]]]:
    """The ``(keys, options)`` of the indexes the outbox needs on ``collection`` (see module doc).

    Single-field sparse indexes only: they hold just the pending documents, so an idle relay
    poll costs about a millisecond whatever the collection's size.
    """
    if collection == EVENTS_COLLECTION:
        return [([("pending_at", 1)], {"name": INDEX_NAME, "sparse": True}),
                ([("expire_at", 1)], {"name": "oe_ttl", "expireAfterSeconds": 0}),
                ([("c", 1), ("o", 1), ("s", 1)], {"name": "oe_history"})]
    if collection == HISTORY_COLLECTION:
        # oe_history_fill serves the clean-up's upsert into a document's open bucket ({c, o, count <
        # 100}): without it SecantusDB scans every bucket per upsert (quadratic over a bulk write)
        return [([("c", 1), ("o", 1), ("first", 1)], {"name": "oe_history"}),
                ([("c", 1), ("o", 1), ("count", 1)], {"name": "oe_history_fill"}),
                ([("expire_at", 1)], {"name": "oe_ttl", "expireAfterSeconds": 0})]
    return [([(PENDING_FIELD, 1)], {"name": INDEX_NAME, "sparse": True})]


def companions(collection: str) -> tuple[str, ...]:
    """The collections whose indexes a model collection's writes need too (rows and history)."""
    return () if collection in (EVENTS_COLLECTION, HISTORY_COLLECTION) else (EVENTS_COLLECTION, HISTORY_COLLECTION)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """One event recorded by a write and not yet known to be on the broker.

    ``home`` is the collection holding the record: a model collection (the record is an entry
    of that document's ``_oe_outbox``, whose ``_id`` is ``key``) or :data:`EVENTS_COLLECTION`.
    ``event`` is the :class:`Event` itself in the process that built it (``None`` when read back),
    and ``delay`` the ``delay=`` it was emitted with (``None`` when read back: ``due`` is kept).
    ``seq`` is its write sequence (``0``: written before there was one); ``retention`` the
    model's history retention in seconds (:data:`FOREVER`; ``None``: the process's setting).
    ``summary`` is its history summary (:func:`summary_of`) when built here (``None`` when read
    back: the history computes it from ``wire``), so the clean-up does not decode ``wire``.
    """

    id: str
    name: str
    wire: str
    at: datetime
    due: float | None = None
    home: str = ""
    key: Any = None
    event: Event | None = field(default=None, compare=False, repr=False)
    delay: float | None = field(default=None, compare=False, repr=False)
    seq: int = 0
    retention: float | None = None
    summary: str | None = field(default=None, compare=False, repr=False)

    @property
    def embedded(self) -> bool:
        """True when the record is an entry of a model document's ``_oe_outbox``."""
        return self.home != EVENTS_COLLECTION

    @property
    def path(self) -> str:
        """Where the entry lives in its document: ``_oe_outbox.<event id>``."""
        return f"{OUTBOX_FIELD}.{self.id}"

    def entry(self) -> dict[str, Any]:
        """The ``_oe_outbox`` entry of this record (its key is the event id)."""
        entry: dict[str, Any] = {"n": self.name, "at": self.at, "s": self.seq, "w": self.wire}
        if self.due is not None:
            entry["due"] = self.due
        if self.retention is not None:
            entry["r"] = self.retention
        return entry

    def history_seconds(self, default: float | None) -> float | None:
        """How long this record stays in the history once sent: the model's retention, else
        ``default`` (``None``: forever; ``0``: not kept)."""
        if self.retention is None:
            return default
        return None if self.retention < 0 else self.retention

    def row(self, collection: str, object_id: Any, *, intent: bool = False) -> dict[str, Any]:
        """The pending ``_oe_events`` row of this record, for ``object_id`` of ``collection``."""
        row = {"_id": self.id, **self.entry(), "c": collection, "o": object_id, "pending_at": self.at}
        if intent:
            row["intent"] = True
        return row

    def wire_dict(self) -> dict[str, Any]:
        """The event's wire form (:meth:`Event.to_dict`)."""
        decoded: dict[str, Any] = json.loads(self.wire)
        return decoded

    def to_event(self) -> Event:
        """The :class:`Event` (rebuilt from the wire form when read back)."""
        return self.event if self.event is not None else Event.from_json(self.wire)


def now() -> datetime:
    """The current time as MongoDB stores it (UTC, milliseconds)."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def build_pending(event: Event, due: float | None = None, *, home: str = "", key: Any = None,
                  max_bytes: int = DEFAULT_MAX_EVENT_BYTES, retention: float | None = None) -> PendingEvent:
    """The record of ``event`` (with the current trace context), checked against ``max_bytes``;
    ``retention``: the model's history retention (see :class:`PendingEvent`).

    Raises :class:`EventTooLargeError` naming the largest parts of the event when its JSON is
    longer than ``max_bytes``; nothing has been written at that point.
    """
    event = with_trace_context(event)
    if key is None and home == EVENTS_COLLECTION:
        key = str(event.id)  # an _oe_events row is keyed by its event id
    wire_form = event.to_dict()
    wire = wire_json(wire_form)  # = event.to_json(), encoded once for the record and its summary
    if len(wire) > max_bytes:  # ASCII JSON (json.dumps escapes the rest): characters are bytes
        raise too_large(event, len(wire), max_bytes)
    return PendingEvent(str(event.id), event.name, wire, now(), due, home, key, event, seq=next_sequence(),
                        retention=retention, summary=summary_of(wire_form))


SUMMARY_KEYS = ("id", "name", "action", "changes", "metadata", "created_at")
"""What a history entry's summary keeps of the event's wire form (everything but ``data``)."""


def summary_of(wire_form: Mapping[str, Any]) -> str:
    """The history summary JSON of an event's wire form (:meth:`Event.to_dict`): :data:`SUMMARY_KEYS`.

    Example::

        >>> summary_of({"id": "1", "name": "a.b", "data": {"x": 1}, "changes": {}})
        '{"id":"1","name":"a.b","changes":{}}'
    """
    return json.dumps({key: wire_form[key] for key in SUMMARY_KEYS if key in wire_form}, separators=(",", ":"))


def from_entry(event_id: str, entry: dict[str, Any], home: str, key: Any) -> PendingEvent:
    """A record read back from a model document's ``_oe_outbox``."""
    return PendingEvent(event_id, entry.get("n", ""), entry["w"], entry["at"], entry.get("due"), home, key,
                        seq=entry.get("s", 0), retention=entry.get("r"))


def moved(event_id: str, entry: dict[str, Any]) -> PendingEvent:
    """A document's ``_oe_outbox`` entry as the ``_oe_events`` row it is copied to (before a delete)."""
    return PendingEvent(event_id, entry.get("n", ""), entry["w"], entry["at"], entry.get("due"), EVENTS_COLLECTION,
                        event_id, seq=entry.get("s", 0), retention=entry.get("r"))


def from_row(row: dict[str, Any]) -> PendingEvent:
    """A record read back from ``_oe_events``."""
    return PendingEvent(str(row["_id"]), row.get("n", ""), row["w"], row.get("at") or row["pending_at"],
                        row.get("due"), EVENTS_COLLECTION, row["_id"], seq=row.get("s", 0), retention=row.get("r"))


def expiry(sent_at: datetime, seconds: float | None) -> datetime | None:
    """When a record sent at ``sent_at`` leaves the history (``seconds``: ``None`` forever)."""
    return None if seconds is None else sent_at + timedelta(seconds=seconds)


def document_key(home: str, key: Any) -> Any:
    """A dict key for document ``key`` of ``home`` (``repr`` for an unhashable ``_id``)."""
    try:
        hash(key)
    except TypeError:
        return (home, repr(key))
    return (home, key)


def largest_parts(event: Event, count: int = 3) -> tuple[tuple[str, int], ...]:
    """The ``count`` largest parts of ``event`` as ``(path, bytes of JSON)``, largest first."""
    sizes: list[tuple[str, int]] = []
    for name, values in (("data", event.data), ("metadata", event.metadata)):
        for key, value in values.items():
            sizes.append((f"{name}.{key}", _size(codec.encode(value))))
    for path, pair in event.changes.items():
        sizes.append((f"changes.{path}", _size([codec.encode(value) for value in pair])))
    return tuple(sorted(sizes, key=lambda item: -item[1])[:count])


def too_large(event: Event, size: int, limit: int) -> EventTooLargeError:
    """The error for an event of ``size`` bytes over ``limit``."""
    parts = largest_parts(event)
    named = ", ".join(f"{path} ({human(n)})" for path, n in parts) or "no single part"
    return EventTooLargeError(
        f"{event.name} is {human(size)} as JSON, over the {human(limit)} limit for one event; largest parts: "
        f"{named}. Nothing was written. Keep large values out of events (store them elsewhere and keep a "
        "reference, or mark the field Sensitive so only the fact of the change travels), or raise "
        "event_config['max_event_bytes']", size, limit, parts,
    )


def human(size: int) -> str:
    """``size`` bytes as ``"1.5 MiB"``/``"12.0 KiB"``/``"512 B"``."""
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MiB"
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())
