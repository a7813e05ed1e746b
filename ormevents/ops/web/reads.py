"""What the dashboard's pages show, read from one queue's Redis (sync; the views run these on
worker threads, never on the event loop).

* :func:`overview` — counters, the last hour per minute, per-handler gauges and totals, failed
  jobs by handler and error type, delayed events due soon, queue depths, the workers seen;
* :func:`schedule_page` — the delayed events and retries waiting in the schedule, by due time;
* :func:`event_detail` — an event, each handler's status, its runs and results, its failed jobs.

Everything shown comes from records the worker stored, and events are stored redacted
(:mod:`ormevents.events.redaction`): nothing here can show a sensitive value.

Imported by :mod:`ormevents.ops.web.views` only.

Example::

    data = overview(client, store)
    data.counters.get("dispatched", 0), [w.name for w in data.workers]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...jobs.activity import (
    Minute,
    WorkerSeen,
    read_activity,
    read_handler_totals,
    read_workers,
)
from ...jobs.keys import Keys
from ...jobs.records import FailedJob
from ...jobs.redis_store import FailedJobStore
from ...jobs.replies import reply_text
from ...jobs.schedule_codec import unpack
from ...jobs.status import EventStatus, read_gauges, read_status

COUNTERS = ("dispatched", "unmatched", "succeeded", "retried", "failed", "rejected", "duplicates",
            "unknown_handler", "condition_error", "failed_evicted")


@dataclass(frozen=True)
class Delayed:
    """One entry of the schedule: a delayed event (``kind == "event"``, cancellable) or a retry."""

    member: str
    kind: str
    event_id: str
    event_name: str
    handler: str | None
    attempt: int | None
    due_at: datetime
    in_flight: bool = False


@dataclass
class Overview:
    """What the overview page shows (see :func:`overview`)."""

    counters: dict[str, int]
    minutes: list[Minute]
    handlers: dict[str, dict[str, int]]
    failed_total: int
    failed_by_handler: dict[str, int]
    failed_by_exception: dict[str, int]
    due_soon: list[Delayed]
    scheduled: int
    queues: dict[str, int]
    workers: list[WorkerSeen]
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def overview(client: Any, store: FailedJobStore, due_limit: int = 10) -> Overview:
    """Everything the overview page shows, in a handful of pipelined round trips."""
    keys = store.keys
    workers = read_workers(client, keys)
    queue_names = sorted({store.queue_name, *(q for w in workers if w.alive for q in w.queues)})
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.stats)
    pipe.zcard(keys.schedule)
    pipe.zcard(keys.inflight)
    for name in queue_names:
        pipe.llen(name)  # the Redis broker's list (0 on RabbitMQ: the broker's own tools show it)
    stats, scheduled, inflight, *depths = pipe.execute()
    handlers: dict[str, dict[str, int]] = {}
    for name, gauges in read_gauges(client, keys).items():
        handlers.setdefault(name, {}).update(gauges)
    for name, totals in read_handler_totals(client, keys).items():
        handlers.setdefault(name, {}).update(totals)
    by_handler = store.values("handler")
    for name, count in by_handler.items():
        handlers.setdefault(name, {})["failed_jobs"] = count
    counters = {reply_text(k): int(v) for k, v in stats.items()}
    return Overview(
        counters={name: counters.get(name, 0) for name in COUNTERS},
        minutes=read_activity(client, keys, 60),
        handlers=dict(sorted(handlers.items())),
        failed_total=store.count(),
        failed_by_handler=dict(sorted(by_handler.items(), key=lambda kv: -kv[1])),
        failed_by_exception=dict(sorted(store.values("exception").items(), key=lambda kv: -kv[1])),
        due_soon=schedule_page(client, keys, 0, due_limit)[0],
        scheduled=int(scheduled) + int(inflight),
        queues=dict(zip(queue_names, (int(d) for d in depths))),
        workers=workers,
    )


def schedule_page(client: Any, keys: Keys, start: int, limit: int) -> tuple[list[Delayed], int]:
    """Entries ``start`` .. ``start + limit`` of the schedule by due time, and how many there are
    (index ranges: any page of 100,000 entries costs the same)."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.schedule, start, start + limit - 1, withscores=True)
    pipe.zcard(keys.schedule)
    rows, total = pipe.execute()
    members = [reply_text(member) for member, _ in rows]
    payloads = client.hmget(keys.payloads, members) if members else []
    return [_delayed(member, float(score), raw) for member, (_, score), raw in zip(members, rows, payloads)], int(total)


def _delayed(member: str, due: float, raw: Any) -> Delayed:
    kind, _, rest = member.partition(":")
    event_name, event_id, handler, attempt = "?", rest, None, None
    try:
        args = unpack(raw)["args"] if raw else []
        event_name, event_id = str(args[0]["name"]), str(args[0]["id"])
        if kind == "run":
            handler, attempt = str(args[1]), int(args[2])
    except (ValueError, KeyError, IndexError, TypeError):
        pass  # shown by its member name only
    return Delayed(member, kind, event_id, event_name, handler, attempt, datetime.fromtimestamp(due, UTC))


@dataclass
class EventDetail:
    """An event's status, its runs per handler (run id -> deliveries started, ended?), results
    of the handlers that completed it, and its failed jobs by handler."""

    status: EventStatus | None
    runs: dict[str, int]
    results: dict[str, Any]
    failed: dict[str, FailedJob]
    delayed_due: datetime | None


def event_detail(client: Any, store: FailedJobStore, event_id: str) -> EventDetail:
    """Everything the event page shows; ``status`` is ``None`` for an unknown or expired event."""
    keys = store.keys
    status = read_status(client, keys, event_id)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.runs(event_id))
    pipe.hgetall(keys.done(event_id))
    pipe.zscore(keys.schedule, f"event:{event_id}")
    runs_raw, done_raw, due = pipe.execute()
    runs = {reply_text(k): int(v) for k, v in runs_raw.items() if not reply_text(k).endswith(":end")}
    results = {reply_text(k): _json(v) for k, v in done_raw.items()}
    failed: dict[str, FailedJob] = {}
    for name in sorted(status.handlers) if status else []:
        job = store.get(FailedJob.make_id(event_id, name))
        if job is not None:
            failed[name] = job
    when = datetime.fromtimestamp(float(due), UTC) if due is not None else None
    return EventDetail(status, runs, results, failed, when)


def _json(raw: Any) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return reply_text(raw)
