"""Replaying stored events to ONE named handler, through the normal worker path.

``event_bus.replay(handler=..., model=..., since=..., until=..., where=..., force=False)`` (and
``ormevents replay``) reads the model's stored events (:func:`~ormevents.delivery.outbox.history.read_model`)
and, per event, does what a worker's dispatch does for one handler: the run ledger's dispatch
script (status ``queued`` with ``replay: true``, gauges) and a run of the handler, sent in
``ormevents.run_handler_batch`` messages of up to :data:`BATCH_EVENTS` events (each event's run
is handled as its own ``run_handler``, see :mod:`ormevents.delivery.celery.batch`). The
worker then runs it like any other run: retries, failed jobs, status, logs (``extra["replay"]``
and "attempt 1, replay" in the start line); the other handlers never see it.

* **Only what the handler listens to.** An event the handler does not want is not sent: its
  pattern and condition (:meth:`Handler.wants`) when it is registered in this process, else the
  event-name pattern the running workers publish for it in their heartbeat; the worker skips a
  replayed run whose event its handler does not want (a heartbeat of an older worker tells no
  pattern).
* **Exactly once.** An event the handler completed already (its completion record,
  ``<queue>:done:<event id>``, kept ``ORMEVENTS_RESULT_TTL``, 7 days by default) is skipped
  before anything is sent, and the worker's ledger skips it too. Each replay has its own run id
  (``replay:<handler>:<random>``), so a replay after a failed replay run runs it again; two
  replays running at once send two runs of an event, which the lease of (event, handler) keeps
  apart and the completion record makes the second skip: **a second replay runs nothing the
  first completed**. ``force=True`` drops the completion records of the replayed events; a
  handler that takes a MongoDB session still applies its effect once (its inbox record is permanent).
* **Bad input first.** ``since`` after ``until`` (:class:`~ormevents.errors.InvalidFilterError`),
  an unknown model (:class:`~ormevents.errors.UnknownModelError`) or handler
  (:class:`~ormevents.errors.UnknownHandlerError`: when workers are running, the handler must be
  in the registry one of them publishes in its heartbeat, i.e. its module is imported by a
  worker; with no worker running, it must be registered in this process) raise before
  anything is sent.
* ``dry_run`` counts what would be sent and skipped; ``rate`` caps events sent per second;
  ``progress(done)`` is called after each batch.

Example::

    summary = await event_bus.replay(handler="audit.order", model=Order, since=datetime(2026, 11, 1, tzinfo=UTC))
    summary.sent, summary.skipped
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...errors import InvalidFilterError, UnknownHandlerError
from ...events.patterns import Pattern
from ...handlers.registry import HandlerRegistry
from ...jobs.activity import WorkerSeen, read_workers
from ...jobs.status import handler_fields
from ..outbox.history import HistoryEntry, read_model, sequence_range
from .envelope import EnvelopeBuilder, batches
from .transport import push_registered
from .run_ledger import RunLedger
from .sending import run_batch_message

logger = logging.getLogger("ormevents.delivery.celery.replay")
BATCH = 200
BATCH_EVENTS = 32
"""The most events one ``ormevents.run_handler_batch`` message of a replay carries."""
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*")


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did: stored events ``matched`` (in the range, passing ``where``, wanted by the
    handler's pattern and condition), run messages
    ``sent``, events ``skipped`` (the handler completed them already), in ``seconds``."""

    handler: str
    collection: str
    matched: int
    sent: int
    skipped: int
    dry_run: bool
    seconds: float

    @property
    def per_second(self) -> float:
        """Events handled by the replay per second (matched / seconds)."""
        return self.matched / self.seconds if self.seconds > 0 else float(self.matched)


def parse_rate(text: str | float | None) -> float | None:
    """Events per second from ``500/s``, ``30/m``, ``1000/h`` or a number (``None``: no cap).

    Example::

        >>> parse_rate("30/m")
        0.5
    """
    if text is None or isinstance(text, (int, float)):
        rate = None if text is None else float(text)
    else:
        found = _RATE.fullmatch(text)
        if found is None:
            raise InvalidFilterError(f"rate {text!r}: use events per second, minute or hour, e.g. 500/s, 30/m")
        rate = float(found.group(1)) / {"s": 1, "m": 60, "h": 3600}[found.group(2) or "s"]
    if rate is not None and rate <= 0:
        raise InvalidFilterError(f"rate {text!r} must be above 0")
    return rate


def handler_filter(name: str, registry: HandlerRegistry,
                   workers: Sequence[WorkerSeen]) -> Callable[[HistoryEntry], bool]:
    """Whether handler ``name`` wants a stored event (see module doc): its own :meth:`Handler.wants`
    when registered here, else the patterns running workers publish for it (none published: every event)."""
    local = registry.get(name)
    if local is not None:
        def wants(entry: HistoryEntry) -> bool:
            if not local.pattern.matches(entry.name):
                return False
            try:
                return local.condition is None or local.wants(entry.event)
            except Exception:  # a broken condition: its job was parked (condition_error); retry that instead
                logger.exception("condition of handler %s failed on event %s; not replayed", name, entry.id)
                return False
        return wants
    patterns = [Pattern.compile(w.patterns[name]) for w in workers
                if w.alive and w.patterns is not None and name in w.patterns]
    if not patterns:
        return lambda entry: True
    return lambda entry: any(pattern.matches(entry.name) for pattern in patterns)


def handler_queue(name: str, registry: HandlerRegistry, workers: Sequence[WorkerSeen]) -> str | None:
    """The broker queue of handler ``name`` (``None``: the event queue), or
    :class:`UnknownHandlerError` if no running worker imports it (see module doc)."""
    telling = [w for w in workers if w.alive and w.handlers is not None]
    if telling:
        having = [w.handlers for w in telling if w.handlers is not None and name in w.handlers]
        if having:
            return having[0][name]
        known = sorted({h for w in telling for h in (w.handlers or {})})
        raise UnknownHandlerError(
            f"no running worker has a handler named {name!r}: import its module in the workers "
            f"(ORMEVENTS_IMPORTS) and restart them; they have {', '.join(known) or 'no handlers'}")
    local = registry.get(name)
    if local is None:
        raise UnknownHandlerError(
            f"no handler named {name!r} is registered in this process and no running worker tells its handlers; "
            f"registered here: {', '.join(registry.names()) or 'none'}")
    return local.queue


class Replayer:
    """Sends one batch of stored events to one handler (synchronous: runs off the loop)."""

    def __init__(self, publisher: Any, handler: str, queue: str | None, *, force: bool, dry_run: bool) -> None:
        settings = publisher.settings
        self.redis, self.sender, self.keys, self.settings = publisher.redis, publisher.sender, settings.keys, settings
        self.ledger = RunLedger(publisher.redis, settings.keys, settings.result_ttl, settings.run_lease)
        self.handler, self.queue, self.force, self.dry_run = handler, queue, force, dry_run
        self.run_id = f"replay:{handler}:{uuid.uuid4().hex[:12]}"  # one per replay (see module doc)
        self.options = {**settings.message_options(), "replay": True}
        fast = bool(getattr(publisher.outbox, "fast", False))
        self.envelopes = EnvelopeBuilder(queue or settings.queue_name, None) if fast else None

    def batch(self, entries: list[HistoryEntry]) -> tuple[int, int]:
        """Send ``entries`` (or count them, ``dry_run``); returns ``(sent, skipped)``."""
        if not entries:
            return 0, 0
        pipe = self.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.hexists(self.keys.done(entry.id), self.handler)
        done = pipe.execute()
        todo = list(entries) if self.force else [e for e, was in zip(entries, done) if not was]
        if self.dry_run or not todo:
            return len(todo), len(entries) - len(todo)
        now = time.time()
        queued = handler_fields(self.handler, state="queued", attempts=0, queued_at=now, updated_at=now,
                                last_error=None, result=None, replay=True)
        pipe = self.redis.pipeline(transaction=False)
        if self.force:
            for entry in todo:
                pipe.hdel(self.keys.done(entry.id), self.handler)
        for entry in todo:
            self.ledger.dispatch(entry.wire, entry.id, {self.handler: queued}, self.settings.status_ttl, pipe=pipe,
                                 run_id=lambda _: self.run_id)
        outcomes = pipe.execute()[len(todo) if self.force else 0:]
        going = [entry for entry, names in zip(todo, outcomes) if names]  # not completed meanwhile
        kwargs: dict[str, Any] = {"first_at": now, "options": self.options, "due": now, "run_id": self.run_id,
                                  **({"queue": self.queue} if self.queue else {})}
        groups = batches(going, BATCH_EVENTS)
        if self.envelopes is None:
            for group in groups:
                self.sender.send(run_batch_message([e.data for e in group], self.handler, 0, None, **kwargs))
        elif going:  # a Redis broker: the envelopes pushed at once (see envelope.py)
            build = self.envelopes
            with self.redis.pipeline() as pipe:  # pushed and recorded as unacknowledged at once (see .transport)
                push_registered(pipe, build.queue, [
                    build.run_batch([e.wire for e in group], [e.id for e in group], self.handler, kwargs)
                    for group in groups])
                pipe.execute()
        return len(going), len(entries) - len(going)


async def replay_events(publisher: Any, registry: HandlerRegistry, database: Any, collection: str, handler: str, *,
                        since: datetime | None = None, until: datetime | None = None,
                        where: Callable[[HistoryEntry], bool] | None = None, force: bool = False,
                        dry_run: bool = False, rate: str | float | None = None,
                        progress: Callable[[int], None] | None = None) -> ReplaySummary:
    """Replay ``collection``'s stored events to ``handler`` (see module doc)."""
    low, high = sequence_range(since, until)
    per_second = parse_rate(rate)
    workers = await publisher._off_loop(read_workers, publisher.redis, publisher.settings.keys, what="read workers")
    queue = handler_queue(handler, registry, workers)
    wanted = handler_filter(handler, registry, workers)
    replayer = Replayer(publisher, handler, queue, force=force, dry_run=dry_run)
    size = BATCH if per_second is None else max(1, min(BATCH, int(per_second / 5)))
    began = time.perf_counter()
    matched = sent = skipped = 0
    pending: list[HistoryEntry] = []

    async def flush() -> None:
        nonlocal sent, skipped
        done, passed = await publisher._off_loop(replayer.batch, list(pending), what=f"replay to {handler}")
        sent, skipped = sent + done, skipped + passed
        pending.clear()
        if progress is not None:
            progress(sent + skipped)
        if per_second is not None and not dry_run:
            ahead = sent / per_second - (time.perf_counter() - began)
            if ahead > 0:
                await asyncio.sleep(ahead)

    async for entry in read_model(database, collection, since=low, until=high):
        if (where is not None and not where(entry)) or not wanted(entry):
            continue
        matched += 1
        pending.append(entry)
        if len(pending) >= size:
            await flush()
    if pending:
        await flush()
    summary = ReplaySummary(handler, collection, matched, sent, skipped, dry_run, time.perf_counter() - began)
    logger.info("replay of %s to %s: %d matched, %d sent, %d skipped (already handled)%s", collection, handler,
                matched, sent, skipped, " (dry run)" if dry_run else "",
                extra={"handler": handler, "replay": True, "state": "replayed"})
    return summary


async def count_stored(database: Any, collection: str, since: datetime | None, until: datetime | None) -> int:
    """An upper bound of the stored events of ``collection`` in the range (for a progress bar)."""
    from ..outbox.records import EVENTS_COLLECTION, HISTORY_COLLECTION

    low, high = sequence_range(since, until)
    total = 0
    async for bucket in database[HISTORY_COLLECTION].find({"c": collection, "last": {"$gte": low},
                                                            "first": {"$lte": high}}, {"count": 1}):
        total += int(bucket.get("count", 0))
    rows = await database[EVENTS_COLLECTION].count_documents({"c": collection, "s": {"$gte": low, "$lte": high}})
    return total + int(rows)
