"""Per-event delivery status: which handlers an event went to, and how each run went.

One Redis HASH per event, ``<queue>:status:<event id>``, written by the worker on every state
change (each write is queued on a pipeline the caller already sends, or is one round trip of
its own) and expiring ``status_ttl`` seconds (default 7 days) after the last change. Fields:
``event`` (wire JSON), ``state`` (``scheduled``, ``dispatched``, ``unmatched``,
``cancelled``), ``due_at``, and ``h|<handler>|<attribute>`` per handler. Values are JSON.

Handler states: ``queued`` -> ``running`` -> ``succeeded`` | ``retrying`` (-> ``running`` ...)
| ``failed``. A delayed event is ``scheduled`` (no handlers yet: the worker matches them when
it is due): it has no HASH of its own while it waits, its schedule entry is read instead (a
pending event costs Redis one entry, not two copies of the event: scenario 5 of
``docs/benchmarks.md``). An event published without delay appears once a worker dispatched it.

Example::

    status = read_status(client, Keys("shop:events"), event_id)
    status.handlers["billing.activate"].state      # 'succeeded'
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from ..events.event import Event
from .keys import Keys
from .replies import reply_text
from .schedule_codec import event_member, unpack

if TYPE_CHECKING:
    import redis

HandlerState = Literal["queued", "running", "retrying", "succeeded", "failed"]
EventState = Literal["scheduled", "dispatched", "unmatched", "cancelled"]


class HandlerStatus(BaseModel):
    """Where one handler's run on one event stands (TaskLet's ``query_handle_info``)."""

    model_config = ConfigDict(frozen=True)

    handler: str
    state: HandlerState
    attempts: int = 0
    last_error: str | None = None
    result: Any = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    updated_at: datetime | None = None
    replay: bool = False
    """True when this run was sent by a replay (``event_bus.replay``, ``ormevents replay``)."""


class EventStatus(BaseModel):
    """An event and the status of each handler it was dispatched to (``query_event_info``)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    event_id: str
    state: EventState
    event: Event | None = None
    due_at: datetime | None = None
    handlers: dict[str, HandlerStatus] = {}


class StatusWriter:
    """Queues status changes on a redis-py pipeline (the caller executes it).

    Example::

        pipe = client.pipeline()
        StatusWriter(keys).handler(pipe, event_id, "billing.activate", ttl, state="running", attempts=1)
        pipe.execute()
    """

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def event(self, pipe: Any, wire: dict[str, Any], state: EventState, ttl: int,
              handlers: Sequence[str] = (), due: float | None = None) -> None:
        """Record the event (and, when dispatched, its handlers as ``queued``)."""
        now = time.time()
        fields: dict[str, Any] = {"event": wire, "state": state}
        if due is not None:
            fields["due_at"] = due
        for name in handlers:
            fields.update(_handler_fields(name, {"state": "queued", "attempts": 0, "queued_at": now,
                                                 "updated_at": now, "last_error": None, "result": None}))
        key = self.keys.status(str(wire["id"]))
        pipe.hset(key, mapping={k: json.dumps(v, separators=(",", ":")) for k, v in fields.items()})
        pipe.expire(key, ttl + max(0, int((due or now) - now)))

    def handler(self, pipe: Any, event_id: str, name: str, ttl: int, **values: Any) -> None:
        """Set attributes of handler ``name`` (``state=``, ``attempts=``, ``result=``, ...)."""
        key = self.keys.status(event_id)
        pipe.hset(key, mapping=handler_fields(name, **values))
        pipe.expire(key, ttl)

    def gauge(self, pipe: Any, handler: str, **deltas: int) -> None:
        """Move per-handler gauges (``queued=1, running=-1``...) that ``ormevents stats`` shows.

        They are kept in the same pipelines as the state changes; a run's own moves (leaving
        queued/scheduled, running, ending) are made by :mod:`ormevents.delivery.celery.run_ledger`, once
        per message: a worker killed mid-run leaves ``running`` one too high until its message
        is redelivered, which ends the lost run.
        """
        for state, delta in deltas.items():
            pipe.hincrby(self.keys.gauges, f"{state}|{handler}", delta)

    def state(self, pipe: Any, event_id: str, state: EventState) -> None:
        """Change the event-level state of a known event (no-op for an unknown one)."""
        key = self.keys.status(event_id)
        pipe.eval("if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'state', ARGV[1]) end",
                  1, key, json.dumps(state))


def read_gauges(client: redis.Redis, keys: Keys) -> dict[str, dict[str, int]]:
    """Handler -> {"queued": n, "scheduled": n, "running": n} (negative drift shown as 0)."""
    out: dict[str, dict[str, int]] = {}
    for field, value in client.hgetall(keys.gauges).items():
        state, _, handler = reply_text(field).partition("|")
        out.setdefault(handler, {"queued": 0, "scheduled": 0, "running": 0})[state] = max(0, int(value))
    return out


def handler_fields(name: str, **values: Any) -> dict[str, str]:
    """The status HASH fields (JSON values) that set attributes of handler ``name``; ``updated_at``
    defaults to now. For callers that write them from a Lua script of their own."""
    values.setdefault("updated_at", time.time())
    return {k: _encode(v) for k, v in _handler_fields(name, values).items()}


_encode_any = json.JSONEncoder(separators=(",", ":"), default=str).encode
_LITERALS = {None: "null", True: "true", False: "false"}


def _encode(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), default=str)``, the same text, with the scalars
    of status fields (``None``, flags, counts, times, states) encoded without the encoder's
    machinery: three state changes of about six fields per run."""
    kind = type(value)
    if value is None or kind is bool:
        return _LITERALS[value]
    if kind is int:
        return int.__repr__(value)
    if kind is float and value - value == 0.0:  # finite (NaN and infinities go the long way)
        return float.__repr__(value)
    if kind is str:
        return _encode_string(value)
    return _encode_any(value)


_encode_string = json.encoder.encode_basestring_ascii  # what the encoder uses for a str


def _handler_fields(name: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"h|{name}|{attr}": value for attr, value in values.items()}


def read_status(client: redis.Redis, keys: Keys, event_id: str) -> EventStatus | None:
    """The status of ``event_id``, or ``None`` if it is unknown or expired (a delayed event
    still waiting: ``scheduled``, read from its schedule entry)."""
    raw = client.hgetall(keys.status(str(event_id)))
    return parse_status(str(event_id), raw) if raw else _scheduled(client, keys, str(event_id))


def _scheduled(client: redis.Redis, keys: Keys, event_id: str) -> EventStatus | None:
    """The status of a delayed event waiting in the schedule (pending, or being sent)."""
    member = event_member(event_id)
    payload, claimed = client.hget(keys.payloads, member), client.hget(keys.inflight_claims, member)
    if payload is None and claimed is not None:  # "<owner>\n<message>"
        payload = reply_text(claimed).partition("\n")[2]
    if payload is None:
        return None
    try:
        message = unpack(payload)
        event = Event.from_dict(message["args"][0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None  # not an event this version can read: unknown rather than an error
    due = (message.get("kwargs") or {}).get("due")
    return EventStatus(event_id=event_id, state="scheduled", event=event, due_at=_time("due_at", due), handlers={})


def parse_status(event_id: str, raw: dict[Any, Any]) -> EventStatus:
    """Build an :class:`EventStatus` from the HASH fields (see module doc)."""
    fields = {reply_text(k): json.loads(v) for k, v in raw.items()}
    handlers: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        if field.startswith("h|"):
            name, _, attr = field[2:].rpartition("|")
            handlers.setdefault(name, {"handler": name})[attr] = _time(attr, value)
    wire = fields.get("event")
    return EventStatus(
        event_id=event_id, state=fields.get("state", "dispatched"),
        event=Event.from_dict(wire) if isinstance(wire, dict) else None,
        due_at=_time("due_at", fields.get("due_at")),
        handlers={name: HandlerStatus.model_validate(values) for name, values in sorted(handlers.items())
                  if "state" in values},
    )


def _time(attr: str, value: Any) -> Any:
    if attr.endswith("_at") and isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return value
