"""The body of ``ormevents.dispatch``: fan an event out, running this queue's handlers in the task.

1. Match the event against the registry (pattern and condition). No match: the status says
   ``unmatched``, counted, acknowledged. A handler whose condition raises on the event is queued
   in the ledger like the others and parked at once as a failed job (reason ``condition_error``),
   before any handler runs: a broken condition loses no event, and stops no other handler.
2. Queue one run per matching handler that has not completed the event, in the run ledger's
   DISPATCH script (:meth:`~ormevents.delivery.celery.run_ledger.RunLedger.dispatch`). The
   first handler of this queue that takes no session also *begins* its run in that same round
   trip (:meth:`~ormevents.delivery.celery.run_ledger.RunLedger.dispatch_and_begin`).
3. Send a ``run_handler`` message for each handler routed to another queue.
4. Run the handlers of this queue here, one after another (the run begun in step 2 first: it
   holds its lease until it runs), each exactly as if its ``run_handler`` message (deterministic
   run id ``<handler>@0``) had come back from the broker: its own begin in the ledger, lease,
   status, retry into the schedule, failed job. Once :data:`INLINE_BUDGET` seconds have gone by,
   the handlers not yet started are sent as ``run_handler`` messages instead, so a slow handler
   delays the others of the event by at most its own run. The run begun in step 2, when it is
   not run here after all (budget, soft time limit, Redis or the broker failing under the
   dispatch), is abandoned in the ledger first (:meth:`RunLedger.abandon
   <ormevents.delivery.celery.run_ledger.RunLedger.abandon>`), so its message runs it at once.
5. Celery's soft time limit counts from the dispatch task's start, once per task
   (:mod:`ormevents.delivery.celery.soft_time_limit`). With one configured, a handler runs here
   only while more than :data:`INLINE_BUDGET` seconds of it are left, and never after it fired:
   otherwise it is sent as a message, whose task has a full window of its own. An inline run's
   window is thus at most :data:`INLINE_BUDGET` seconds shorter than its message's would be; with
   a limit of :data:`INLINE_BUDGET` or less every run goes as a message.

Why: a broker message and a Celery task cost more than a no-op handler run (scenarios 2 and 11
of ``docs/benchmarks.md``, profiled with py-spy): one message per event instead of one per
(event, handler), and one round trip fewer for the first run. Nothing about a run's guarantees
changes: a dispatch redelivered after its process died skips the runs that completed (the
ledger), counts the one that was running as a lost attempt (retried by its policy), and runs
or sends the others; the fan-out messages are all sent before any handler runs, so a time limit
never cuts them.

Example::

    names = dispatch(delivery, (event.to_dict(), None), options=None, due=time.time())
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import redis

from ...errors import BrokerUnavailableError
from ...events.event import Event
from ...jobs import activity
from ...jobs.status import handler_fields
from .run_ledger import Begin, dispatch_run_id
from .sending import run_message
from .soft_time_limit import SoftTimeLimitGuard

if TYPE_CHECKING:
    from ...handlers.registry import Handler, HandlerRegistry
    from ...jobs.keys import Keys
    from ...jobs.status import StatusWriter
    from .config import DeliverySettings
    from .outcomes import Run, RunOutcomes
    from .run_ledger import RunLedger
    from .sending import Sender


class Delivering(Protocol):
    """What the fan-out needs of the worker's delivery (:class:`~.worker.WorkerDelivery` has it;
    a protocol, so that this module, which the worker imports, does not import it back)."""

    settings: DeliverySettings
    registry: HandlerRegistry
    keys: Keys
    status: StatusWriter
    outcomes: RunOutcomes

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def sender(self) -> Sender: ...

    @property
    def ledger(self) -> RunLedger: ...

    def parse(self, args: tuple[Any, ...], policy_index: int, task: str) -> tuple[Event, Any]: ...

    def first_run(self, event: Event, handler: Handler, policy_cfg: Any, now: float, options: Any) -> Run: ...

    def start(self, run: Run, handler: Handler, due: float | None, guard: SoftTimeLimitGuard,
              begun: Begin | None = None) -> Any: ...

    def abandon(self, run: Run) -> None: ...

    def park_broken(self, run: Run, error: Exception) -> None: ...

logger = logging.getLogger("ormevents.delivery.celery.worker")

INLINE_BUDGET = 1.0
"""Seconds a dispatch spends running its queue's handlers before it sends the rest as messages."""


def dispatch(delivery: Delivering, args: tuple[Any, ...], options: Any = None, due: float | None = None,
             guard: SoftTimeLimitGuard | None = None) -> list[str]:
    """Fan the event of ``args`` out (see module doc); returns the handlers not yet done."""
    event, policy = delivery.parse(args, 1, "dispatch")
    wire = event.to_dict()
    _, ttl = delivery.settings.options_from(options)
    selection = delivery.registry.select(event)
    selected = {handler.name: handler for handler in selection.handlers}
    broken = {handler.name: (handler, error) for handler, error in selection.broken}
    if not selected and not broken:
        _unmatched(delivery, event, wire, ttl)
        return []
    now = time.time()
    queued = {name: handler_fields(name, state="queued", attempts=0, queued_at=now, updated_at=now,
                                   last_error=None, result=None) for name in [*selected, *broken]}
    wire_json = json.dumps(wire, separators=(",", ":"))
    local = (None, delivery.settings.queue_name)
    guard = guard or SoftTimeLimitGuard()
    first = next((h for h in selected.values() if h.queue in local and not h.wants_session), None) \
        if guard.leaves(INLINE_BUDGET) else None  # no soft time limit window left: every run goes as a message
    run: Run | None = None
    begun: Begin | None = None
    if first is not None:  # its run begins in the dispatch's round trip
        run = delivery.first_run(event, first, policy, now, options)
        names, begun = delivery.ledger.dispatch_and_begin(wire_json, str(event.id), queued, ttl, first.name,
                                                          run.token, delivery.outcomes.running_status(run))
    else:
        names = delivery.ledger.dispatch(wire_json, str(event.id), queued, ttl)
    parked = [name for name in names if name in broken]
    names = [name for name in names if name in selected]
    here = [name for name in names if selected[name].queue in local]
    if run is not None:  # the run begun above goes first: its lease is held until it runs or is abandoned
        here.sort(key=lambda name: name != run.name)
    pending = run if begun is not None and begun.state == "run" else None
    messages = {name: run_message(wire, name, 0, policy, now, queue=selected[name].queue, options=options,
                                  due=due, run_id=dispatch_run_id(name)) for name in names}
    try:
        for name in parked:
            handler, error = broken[name]
            delivery.park_broken(delivery.first_run(event, handler, policy, now, options), error)
        for name in names:  # queued before any run can start; a copy of a queued run is skipped by the ledger
            if name not in here:
                delivery.sender.send(messages[name])
        began = time.monotonic()
        for index, name in enumerate(here):
            if time.monotonic() - began > INLINE_BUDGET or not guard.leaves(INLINE_BUDGET):
                if pending is not None:  # its message must find the run queued, not busy
                    delivery.ledger.abandon(pending.run_id, pending.event_id, pending.name, pending.waiting,
                                            pending.token)
                    pending = None
                for rest in here[index:]:
                    delivery.sender.send(messages[rest])
                logger.debug("dispatch of event %s sent %d handler runs after %.2f s", event.id, len(here) - index,
                             time.monotonic() - began, extra={"event_id": str(event.id), "state": "queued"})
                break
            handler = selected[name]
            if run is not None and name == run.name:
                pending = None  # from here on the run's own bookkeeping ends or abandons it
                delivery.start(run, handler, due, guard, begun)
            else:
                delivery.start(delivery.first_run(event, handler, policy, now, options), handler, due, guard)
    except (redis.RedisError, BrokerUnavailableError):
        if pending is not None:  # the requeued dispatch runs it
            delivery.abandon(pending)
        raise
    return [*parked, *names]


def _unmatched(delivery: Delivering, event: Event, wire: dict[str, Any], ttl: int) -> None:
    pipe = delivery.redis.pipeline(transaction=True)
    delivery.status.event(pipe, wire, "unmatched", ttl)
    pipe.hincrby(delivery.keys.stats, "unmatched", 1)
    activity.count(pipe, delivery.keys, "unmatched")
    pipe.execute()
    logger.info("event %s %s matched no handler", event.name, event.id,
                extra={"event_id": str(event.id), "state": "unmatched"})
