"""The bodies of ``ormevents.dispatch_batch`` and ``ormevents.run_handler_batch``: several events
in one message.

The outbox hand-off, the relay, ``publish_many`` and bulk writes send the events they hand over
together as ``dispatch_batch`` messages, and a replay sends its runs as ``run_handler_batch``
messages (:func:`~ormevents.delivery.celery.envelope.batches`): one broker message and one
Celery task for up to 32 events instead of one each. A message and a task cost more than a
no-op handler run (scenario 2 of ``docs/benchmarks.md``).

Each event of a batch is handled exactly as if it had come alone: a ``dispatch_batch`` event
as an ``ormevents.dispatch`` (:func:`~ormevents.delivery.celery.fanout.dispatch`), a
``run_handler_batch`` event as an ``ormevents.run_handler`` of the same handler, attempt and
keywords (:meth:`~ormevents.delivery.celery.worker.WorkerDelivery.run`): its own entries in the
run ledger, its own runs, status, retries and failed jobs. Nothing about a run's guarantees
changes:

* **Redelivery.** A batch redelivered after its process died is handled again whole: the
  ledger skips the runs that completed, counts the one that was running as a lost attempt
  (retried by its policy, then parked with reason ``worker_lost``) and runs the others.
* **A malformed event** in a batch is parked as a failed job (``malformed_message``) and the
  others are handled; arguments that are not a list of events park the whole message.
* **Budget.** Once :data:`~ormevents.delivery.celery.fanout.INLINE_BUDGET` seconds have gone by,
  or when Celery's soft time limit leaves less than that, the events not yet handled are sent
  on as a new message and this task ends: a slow handler delays the rest of its batch by at most
  its own run, and a time limit never cuts a batch.

Example::

    dispatch_batch(delivery, ([event_a.to_dict(), event_b.to_dict()], None), options=None, due=time.time())
    run_batch(delivery, ([event_a.to_dict(), event_b.to_dict()], "audit.order", 0, None), run_id="replay:...")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from celery.exceptions import Reject  # type: ignore[import-untyped]  # celery ships no type hints

from .fanout import INLINE_BUDGET
from .sending import dispatch_batch_message, run_batch_message
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

    def run(self, args: tuple[Any, ...], first_at: float | None = None, first_failed_at: float | None = None,
            options: Any = None, due: float | None = None, queue: str | None = None, run_id: Any = None,
            task_id: str | None = None, guard: SoftTimeLimitGuard | None = None) -> Any: ...

    def reject(self, reason: str, task: str, args: tuple[Any, ...]) -> Any: ...


def dispatch_batch(delivery: Dispatching, args: tuple[Any, ...], options: Any = None, due: float | None = None,
                   guard: SoftTimeLimitGuard | None = None) -> int:
    """Dispatch the events of ``args`` (``[events], policy``) one after another (see module doc);
    returns how many were dispatched here (the others were malformed or sent on)."""
    events = _events(delivery, args, 2, "dispatch_batch")
    policy = args[1]

    return _in_turn(delivery, events, lambda wire: delivery.dispatch((wire, policy), options=options, due=due,
                                                                     guard=guard),
                    lambda left: dispatch_batch_message(left, policy, options, due), guard)


def run_batch(delivery: Dispatching, args: tuple[Any, ...], guard: SoftTimeLimitGuard | None = None,
              **kwargs: Any) -> int:
    """Run the handler of ``args`` (``[events], handler, attempt, policy``) on each event, one
    after another, each as its ``run_handler`` with these keywords (``first_at``, ``options``,
    ``due``, ``queue``, ``run_id``); returns how many were run here (see module doc)."""
    events = _events(delivery, args, 4, "run_handler_batch")
    handler, attempt, policy = args[1], args[2], args[3]
    if not isinstance(handler, str) or not isinstance(attempt, int) or attempt < 0:
        delivery.reject(f"run_handler_batch needs ([events], handler name, attempt >= 0, policy), got {args[1:3]!r}",
                        "run_handler_batch", args)

    return _in_turn(delivery, events, lambda wire: delivery.run((wire, handler, attempt, policy), guard=guard,
                                                                **kwargs),
                    lambda left: run_batch_message(left, handler, attempt, policy, **kwargs), guard)


def _events(delivery: Dispatching, args: tuple[Any, ...], size: int, task: str) -> list[Any]:
    """The list of events of a batch's ``args``; anything else is parked and rejected."""
    if len(args) < size or not isinstance(args[0], list) or not args[0]:
        delivery.reject(f"{task} needs a non-empty list of events and {size - 1} more arguments, got {args!r:.300}",
                        task, args)
    return list(args[0])


def _in_turn(delivery: Dispatching, events: list[Any], handle: Callable[[Any], Any],
             rest: Callable[[list[Any]], dict[str, Any]], guard: SoftTimeLimitGuard | None) -> int:
    """Handle ``events`` in order within the budget, sending the rest on (see module doc)."""
    guard = guard or SoftTimeLimitGuard()
    began = time.monotonic()
    handled = 0
    for index, wire in enumerate(events):
        if index and (time.monotonic() - began > INLINE_BUDGET or not guard.leaves(INLINE_BUDGET)):
            delivery.sender.send(rest(events[index:]))
            logger.debug("batch sent its last %d events on after %.2f s", len(events) - index,
                         time.monotonic() - began)
            break
        try:
            handle(wire)
        except Reject:  # a malformed event: parked already; the others go on
            continue
        handled += 1
    return handled
