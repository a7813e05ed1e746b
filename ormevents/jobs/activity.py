"""What a queue did lately: per-minute counters, per-handler totals, the workers seen (Redis).

The worker counts, in the pipelines it already sends: ``dispatched`` and ``unmatched`` events
(:meth:`~ormevents.delivery.celery.worker.WorkerDelivery.dispatch`) and the end of each run
(``succeeded``, ``retried``, ``failed``; once per message, in the run ledger's script). Each
count goes into the HASH of its minute, ``<queue>:activity:<epoch minute>``, kept
:data:`ACTIVITY_TTL` seconds, and each run's end also into ``<queue>:stats:handlers``
(``<outcome>|<handler>`` -> total). Every worker's main process writes a heartbeat into
``<queue>:workers`` (:mod:`ormevents.delivery.celery.heartbeat`). The dashboard reads them here.

Example::

    minutes = read_activity(client, Keys("shop:events"), minutes=60)
    minutes[-1].counts.get("dispatched", 0)          # events dispatched in the current minute
    read_handler_totals(client, Keys("shop:events"))  # {"shop.audit": {"succeeded": 12, ...}}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .keys import Keys
from .replies import reply_text

ACTIVITY_TTL = 3 * 3600
"""Seconds a minute's counters are kept."""
WORKER_ALIVE = 30.0
"""A worker whose last heartbeat is older than this is shown as gone."""
WORKER_FORGET = 24 * 3600.0
"""Heartbeats older than this are removed when read."""
OUTCOMES = ("succeeded", "retried", "failed")


def minute_of(now: float) -> int:
    """The epoch minute of ``now`` (epoch seconds)."""
    return int(now // 60)


def count(pipe: Any, keys: Keys, name: str, amount: int = 1, now: float | None = None) -> None:
    """Queue on ``pipe``: ``name`` happened ``amount`` times in the current minute."""
    key = keys.activity(minute_of(time.time() if now is None else now))
    pipe.hincrby(key, name, amount)
    pipe.expire(key, ACTIVITY_TTL)


@dataclass(frozen=True)
class Minute:
    """The counters of one minute (``dispatched``, ``unmatched``, ``succeeded``, ``retried``, ``failed``)."""

    start: datetime
    counts: dict[str, int] = field(default_factory=dict)


def read_activity(client: Any, keys: Keys, minutes: int = 60, now: float | None = None) -> list[Minute]:
    """The last ``minutes`` minutes, oldest first, the current one last (one pipelined round trip)."""
    current = minute_of(time.time() if now is None else now)
    span = range(current - minutes + 1, current + 1)
    pipe = client.pipeline(transaction=False)
    for minute in span:
        pipe.hgetall(keys.activity(minute))
    return [Minute(datetime.fromtimestamp(minute * 60, UTC), {reply_text(k): int(v) for k, v in raw.items()})
            for minute, raw in zip(span, pipe.execute())]


def read_handler_totals(client: Any, keys: Keys) -> dict[str, dict[str, int]]:
    """Handler -> {"succeeded": n, "retried": n, "failed": n} since the counters started."""
    out: dict[str, dict[str, int]] = {}
    for raw_field, value in client.hgetall(keys.handler_totals).items():
        outcome, _, handler = reply_text(raw_field).partition("|")
        out.setdefault(handler, dict.fromkeys(OUTCOMES, 0))[outcome] = int(value)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class WorkerSeen:
    """One worker's last heartbeat: its name, host and pid, the queues it consumes, when it
    started and was last seen, whether that is recent (:data:`WORKER_ALIVE`), and the handlers
    it has imported (name -> its own queue or ``None``; ``None``: a worker that does not say) and
    their event-name patterns (name -> pattern text; ``None``: a worker that does not say)."""

    name: str
    host: str
    pid: int
    queues: tuple[str, ...]
    started_at: datetime
    seen_at: datetime
    alive: bool
    handlers: dict[str, str | None] | None = None
    patterns: dict[str, str] | None = None


def read_workers(client: Any, keys: Keys, now: float | None = None) -> list[WorkerSeen]:
    """The workers of this queue, alive ones first; heartbeats older than a day are removed."""
    now = time.time() if now is None else now
    found: list[WorkerSeen] = []
    stale: list[str] = []
    for raw_name, raw in client.hgetall(keys.workers).items():
        name = reply_text(raw_name)
        try:
            beat = json.loads(raw)
            seen = float(beat["seen"])
            worker = WorkerSeen(name, str(beat.get("host", "")), int(beat.get("pid", 0)),
                                tuple(str(q) for q in beat.get("queues", ())),
                                datetime.fromtimestamp(float(beat.get("started", seen)), UTC),
                                datetime.fromtimestamp(seen, UTC), now - seen <= WORKER_ALIVE,
                                dict(beat["handlers"]) if isinstance(beat.get("handlers"), dict) else None,
                                dict(beat["patterns"]) if isinstance(beat.get("patterns"), dict) else None)
        except (ValueError, KeyError, TypeError):
            stale.append(name)  # not a heartbeat this version wrote
            continue
        if now - seen > WORKER_FORGET:
            stale.append(name)
        else:
            found.append(worker)
    if stale:
        client.hdel(keys.workers, *stale)
    return sorted(found, key=lambda w: (not w.alive, w.name))
