"""The in-process publisher: :class:`EagerPublisher` (``init(..., eager=True)``), for users' unit tests.

It runs matching handlers in-process right after each write, with the same patterns,
conditions, retry policies and failed-job behaviour as a worker (``event_bus.get_failed_jobs``
/ ``retry_job`` / ... work, see :mod:`ormevents.delivery.eager_jobs`); time is simulated, so
retries and delays never sleep: a
  retry moves the clock by the policy's delay at once, and delayed events wait until the clock
  passes them (:meth:`EagerPublisher.advance`, or a retry moving it). Handler queues
  (``queue=``) are ignored: everything runs in-process. A handler that takes a MongoDB session
  gets ``session=None``: no transaction and no inbox in eager mode.

Example::

    await init(database=mongomock_db, eager=True)
    user = await User.create(username="ann")            # handlers ran already
    publisher = eager_publisher()                        # from ormevents.testing
    assert publisher.results_for("user.created")         # handler return values
    await publisher.advance(60)                          # delayed events due within 60 s run now

Never rely on eager mode alone: a worker runs handlers in other processes, with real
redeliveries; test that path too (see ``docs/testing.md``).
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import logging
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..events.event import Event
from ..handlers.registry import Handler, HandlerRegistry, condition_failure
from ..handlers.registry import registry as default_registry
from ..handlers.results import qualname, split_result
from ..handlers.retry import RetryPolicy
from ..jobs.memory_store import EagerFailedStore, failed_job
from ..jobs.records import FailedJobRetention
from .base import PublishedEvent, as_published, due_time
from .eager_jobs import EagerFailedJobsMixin
from .outbox.records import PendingEvent

logger = logging.getLogger("ormevents.delivery.eager")


@dataclass(frozen=True)
class HandlerRun:
    """One handler's outcome on one event in eager mode."""

    event: Event
    handler: str
    attempts: int
    succeeded: bool
    result: Any = None
    error: BaseException | None = None
    retry_delays: tuple[float, ...] = ()
    children: tuple[Event, ...] = ()
    """The events the handler returned (published after it succeeded)."""


@dataclass
class SimulatedClock:
    """Seconds since the eager publisher started. Only the publisher moves it, never backwards:
    :meth:`EagerPublisher.advance`, and each retry by the policy's delay."""

    now: float = 0.0


@dataclass(order=True)
class _Scheduled:
    due: float
    order: int
    event: Event = field(compare=False)


class EagerPublisher(EagerFailedJobsMixin):
    """Runs handlers in-process as events are published (see module doc)."""

    def __init__(self, registry: HandlerRegistry | None = None, retry_policy: RetryPolicy | None = None,
                 failed_jobs: FailedJobRetention | None = None) -> None:
        self.registry = registry if registry is not None else default_registry
        self.retry_policy = retry_policy or RetryPolicy()
        self.clock = SimulatedClock()
        self.published: list[PublishedEvent] = []
        self.runs: list[HandlerRun] = []
        self.unmatched: list[Event] = []  # delivered events no handler matched (logged at debug)
        self.failed_store = EagerFailedStore(failed_jobs)
        self._scheduled: list[_Scheduled] = []
        self._order = itertools.count()
        self._depth = 0  # deliveries in progress; events published inside them do not run due events

    async def publish(self, event: Event, *, delay: float | None = None, eta: datetime | None = None) -> None:
        """Deliver ``event`` now, or keep it until the simulated clock reaches ``delay``/``eta``
        (a ``delay`` of 0 or less, or a past ``eta``, delivers now, as a worker would).

        After the delivery, events that came due because retries moved the clock run too.
        """
        event.to_json()  # same check as the Celery publisher: fail before anything runs
        due = due_time(delay, eta)
        self.published.append(PublishedEvent(event, delay, eta))
        offset = 0.0 if due is None else delay if delay is not None else due - datetime.now(UTC).timestamp()
        if offset > 0:
            heapq.heappush(self._scheduled, _Scheduled(self.clock.now + offset, next(self._order), event))
            return
        await self._deliver(event)
        await self._catch_up()

    outbox = None
    """Handlers run in :meth:`publish` (no outbox): right after each write or commit."""

    async def publish_many(self, events: Sequence[Event | PendingEvent]) -> int:
        """Publish each of ``events`` in order (stored records are turned back into events)."""
        for item in events:
            event, delay, eta = as_published(item)
            await self.publish(event, delay=delay, eta=eta)
        return len(events)

    async def cancel(self, event_id: uuid.UUID | str) -> bool:
        """Drop a delayed event still waiting; ``True`` if it was."""
        before = len(self._scheduled)
        self._scheduled = [s for s in self._scheduled if str(s.event.id) != str(event_id)]
        heapq.heapify(self._scheduled)
        return len(self._scheduled) < before

    async def advance(self, seconds: float) -> list[Event]:
        """Move the simulated clock ``seconds`` ahead and deliver what became due (in due order)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        target = self.clock.now + seconds
        delivered = await self._run_due(target)
        self.clock.now = max(self.clock.now, target)  # retries on the way may have gone past it
        return delivered

    async def _catch_up(self) -> None:
        """Outside any delivery: run the events the clock passed meanwhile (retries move it)."""
        if self._depth == 0:
            await self._run_due(self.clock.now)

    async def _run_due(self, until: float) -> list[Event]:
        """Deliver scheduled events due by ``until`` or by the clock, whichever is later."""
        delivered = []
        while self._scheduled and self._scheduled[0].due <= max(until, self.clock.now):
            item = heapq.heappop(self._scheduled)
            self.clock.now = max(self.clock.now, item.due)
            await self._deliver(item.event)
            delivered.append(item.event)
        return delivered

    @property
    def pending(self) -> list[Event]:
        """Delayed events not yet due, soonest first."""
        return [item.event for item in sorted(self._scheduled)]

    @property
    def failed_jobs(self) -> list[HandlerRun]:
        """The last run of each job in the failed-job store (exhausted retries or ``dont_retry_on``).

        A job retried (``event_bus.retry_job``) or removed leaves this list.
        """
        latest = {f"{run.event.id}:{run.handler}": run for run in self.runs if not run.succeeded}
        return [run for job_id, run in latest.items() if self.failed_store.get(job_id) is not None]

    def results_for(self, event_name: str, handler: str | None = None) -> list[Any]:
        """Return values of the successful runs on events named ``event_name`` (optionally of one handler)."""
        return [
            run.result for run in self.runs
            if run.succeeded and run.event.name == event_name and (handler is None or run.handler == handler)
        ]

    def names(self) -> list[str]:
        """Names of every published event, in publish order."""
        return [record.event.name for record in self.published]

    async def close(self) -> None:
        return None

    async def _deliver(self, event: Event) -> None:
        self._depth += 1
        try:
            selection = self.registry.select(event)
            if not selection.handlers and not selection.broken:
                self.unmatched.append(event)  # as a worker counts stats.unmatched
                logger.debug("eager: event %s %s matched no handler", event.name, event.id,
                             extra={"event_id": str(event.id), "state": "unmatched"})
            for handler, error in selection.broken:
                self._park_broken(handler, event, error)
            for handler in selection.handlers:
                await self._rerun(handler, handler.name, event)
        finally:
            self._depth -= 1

    def _park_broken(self, handler: Handler, event: Event, error: Exception) -> None:
        """Park ``handler``'s job: its condition raised ``error`` on ``event`` (as a worker does)."""
        kind, message, trace = condition_failure(error)
        logger.error("eager: condition of handler %s raised %s on event %s; parked as a failed job", handler.name,
                     kind, event.id, exc_info=error)
        self.runs.append(HandlerRun(event, handler.name, 0, False, None, error))
        self.failed_store.record(failed_job(event, handler.name, kind, message, trace, 0, reason="condition_error"))

    def _handler(self, name: str) -> Handler | None:
        return self.registry.get(name)

    async def _rerun(self, handler: Handler | None, name: str, event: Event, recheck: bool = False) -> None:
        """Run ``handler`` on ``event`` with its retries; record the outcome and publish its chained
        events. ``recheck`` (a retried ``condition_error`` job): only if its condition now holds."""
        if handler is None:
            message = f"no handler named {name!r} is registered"
            self.runs.append(HandlerRun(event, name, 0, False, None, LookupError(message)))
            self.failed_store.record(failed_job(event, name, "UnknownHandler", message, "", 0))
            return
        if recheck:
            try:
                if not handler.wants(event):
                    logger.warning("eager: handler %s does not want event %s any more; not run", name, event.id)
                    return
            except Exception as error:
                self._park_broken(handler, event, error)
                return
        run = await self._run(handler, event)
        self.runs.append(run)
        if run.error is not None:
            self.failed_store.record(failed_job(
                event, handler.name, qualname(type(run.error)), str(run.error),
                "".join(traceback.format_exception(run.error)), run.attempts,
                (handler.retry or self.retry_policy).to_config(),
            ))
            return
        for child in run.children:
            await self.publish(child)

    async def _run(self, handler: Handler, event: Event) -> HandlerRun:
        policy = handler.retry or self.retry_policy
        delays: list[float] = []
        for attempt in itertools.count():
            try:
                argument = handler.argument(event)  # a handler taking a session gets None: no transaction here
                result = handler.func(argument, None) if handler.wants_session else handler.func(argument)
                if inspect.isawaitable(result):
                    result = await result
                children, _ = split_result(result, event, handler.name)  # a bad result fails the attempt
                return HandlerRun(event, handler.name, attempt + 1, True, result, None, tuple(delays), tuple(children))
            except Exception as exc:
                if not policy.should_retry(exc, attempt):
                    logger.info("eager: handler %s failed on %s after %d attempt(s): %s\n%s", handler.name,
                                event.name, attempt + 1, exc, "".join(traceback.format_exception(exc)))
                    return HandlerRun(event, handler.name, attempt + 1, False, None, exc, tuple(delays))
                delay = policy.delay(attempt)
                delays.append(delay)
                self.clock.now += delay
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends
