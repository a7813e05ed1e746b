"""The body of ``ormevents.dispatch_batch``: several events that were handed over together.

The outbox hand-off, the relay, ``publish_many`` and bulk writes send the events they hand over
together as batches (:func:`~ormevents.delivery.celery.outbox.batches`): one broker message and
one Celery task for up to ``OutboxConfig.batch_events`` events, instead of one each. A message
and a task cost more than a no-op handler run (scenario 2 of ``docs/benchmarks.md``).

Each event of a batch is dispatched exactly as if it had come alone in an ``ormevents.dispatch``
(:func:`~ormevents.delivery.celery.fanout.dispatch`): its own entries in the run ledger, its own
runs, status, retries and failed jobs. Nothing about a run's guarantees changes:

* **Redelivery.** A batch redelivered after its process died is dispatched again whole: the
  ledger skips the runs that completed, counts the one that was running as a lost attempt
  (retried by its policy, then parked with reason ``worker_lost``) and runs the others.
* **A malformed event** in a batch is parked as a failed job (``malformed_message``) and the
  others are dispatched; arguments that are not a list of events park the whole message.
* **Budget.** Once :data:`~ormevents.delivery.celery.fanout.INLINE_BUDGET` seconds have gone by,
  or when Celery's soft time limit leaves less than that, the events not yet dispatched are sent
  on as a new message and this task ends: a slow handler delays the rest of its batch by at most
  its own run, and a time limit never cuts a batch.

Example::

    dispatch_batch(delivery, ([event_a.to_dict(), event_b.to_dict()], None), options=None, due=time.time())
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from celery.exceptions import Reject  # type: ignore[import-untyped]  # celery ships no type hints

from .fanout import INLINE_BUDGET
from .sending import DISPATCH_BATCH_TASK, dispatch_message
from .soft_time_limit import SoftTimeLimitGuard

if TYPE_CHECKING:
    from .sending import Sender

logger = logging.getLogger("ormevents.delivery.celery.worker")


class Dispatching(Protocol):
    """What a batch needs of the worker's delivery (:class:`~.worker.WorkerDelivery` has it)."""

    @property
    def sender(self) -> Sender: ...

    def dispatch(self, args: tuple[Any, ...], options: Any = None, due: float | None = None,
                 guard: SoftTimeLimitGuard | None = None) -> list[str]: ...

    def reject(self, reason: str, task: str, args: tuple[Any, ...]) -> Any: ...


def dispatch_batch(delivery: Dispatching, args: tuple[Any, ...], options: Any = None, due: float | None = None,
                   guard: SoftTimeLimitGuard | None = None) -> int:
    """Dispatch the events of ``args`` one after another (see module doc); returns how many
    were dispatched here (the others were malformed or sent on)."""
    if len(args) < 2 or not isinstance(args[0], list) or not args[0]:
        delivery.reject(f"dispatch_batch needs a non-empty list of events, got {args!r:.300}", "dispatch_batch", args)
    events, policy = args[0], args[1]
    guard = guard or SoftTimeLimitGuard()
    began = time.monotonic()
    dispatched = 0
    for index, wire in enumerate(events):
        if index and (time.monotonic() - began > INLINE_BUDGET or not guard.leaves(INLINE_BUDGET)):
            delivery.sender.send(_rest(events[index:], policy, options, due))
            logger.debug("dispatch batch sent its last %d events on after %.2f s", len(events) - index,
                         time.monotonic() - began)
            break
        try:
            delivery.dispatch((wire, policy), options=options, due=due, guard=guard)
        except Reject:  # a malformed event: parked by the dispatch; the others go on
            continue
        dispatched += 1
    return dispatched


def _rest(events: list[Any], policy: Any, options: Any, due: float | None) -> dict[str, Any]:
    """The message that carries the events a batch did not get to (a dispatch for one)."""
    if len(events) == 1 and isinstance(events[0], dict):
        return dispatch_message(events[0], policy, options, due)
    first = events[0].get("id") if isinstance(events[0], dict) else None
    kwargs = {key: value for key, value in (("options", options), ("due", due)) if value is not None}
    return {"task": DISPATCH_BATCH_TASK, "args": [events, policy], "kwargs": kwargs,
            "id": f"{first}:batch{len(events)}"}
