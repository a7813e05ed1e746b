"""What a worker does with ormevents' two tasks: fan an event out, run one handler on it.

* :meth:`WorkerDelivery.dispatch` — fan an event out (:mod:`ormevents.delivery.celery.fanout`):
  queue a run per matching handler not yet done, send ``run_handler`` messages for handlers of
  other queues and run those of this queue in the task, each as its own run (below). The first
  run's message id is deterministic, so a redelivered or duplicate dispatch (a relay re-publish)
  is a copy of the same runs, and the ledger never runs them twice.
* :meth:`WorkerDelivery.dispatch_batch` — the same for each event of a batch handed over together;
  :meth:`WorkerDelivery.run_batch` runs one handler on each event of a batch (a replay's):
  each as if its message had come alone (:mod:`ormevents.delivery.celery.batch`).
* :meth:`WorkerDelivery.run` — run one handler (sync in the task thread, async on the
  process's :class:`~ormevents.delivery.celery.runtime.WorkerLoop`). The ledger's ``begin``
  decides first, atomically: already completed (skipped, logged), already running elsewhere
  (the message waits in the schedule until that run's lease ends), lost (an earlier delivery
  died with its process: a failed attempt, retried by the policy, then a failed job with reason
  ``worker_lost``) or run: the run then holds a lease on its (event, handler), renewed while the
  handler runs (:mod:`ormevents.delivery.celery.leases`). On success its JSON result and the
  events it returned are recorded by ONE script (result under ``done:<event id>``, children into
  the schedule, the lease released; a completion whose lease was taken over is reported as
  fenced). On failure: a retry goes into the Redis schedule after the policy's delay, or, when
  retries are over, a :class:`FailedJob` is stored. A handler that takes a session runs in a
  MongoDB transaction with its inbox record (:mod:`ormevents.delivery.celery.inbox`): its effect
  commits exactly once.

Every state change (queued, running, succeeded, retrying, failed) is written to the event's
status (:mod:`ormevents.jobs.status`) in the same round trip as the bookkeeping it goes with,
logged with ``extra={"event_id", "handler", "attempt", "state"}``, and counted in the Prometheus
metrics when they are enabled (:mod:`ormevents.delivery.metrics`).

Malformed messages are parked as failed jobs with reason ``malformed_message`` (see
:mod:`ormevents.delivery.celery.malformed`; counted as ``stats.rejected``) and then rejected; the worker
keeps running. Messages are data, never code: handler names are looked up in the registry,
and the retry policy is the handler's own (``retry=``) or the worker's default
(``ORMEVENTS_RETRY_POLICY``), never one a message carries; nothing a message names is imported.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import redis
from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

from ...errors import BrokerUnavailableError, ConfigurationError
from ...events.event import Event
from ...handlers.registry import Handler, HandlerRegistry, condition_failure
from ...handlers.results import qualname, split_result
from ...jobs.status import handler_fields
from ..metrics import metrics
from ..tracing import handler_span
from . import batch, fanout
from .config import DeliverySettings
from .inbox import InboxOutcome, session_hex
from .leases import holder_is_dead, new_token
from .malformed import MalformedMessages
from .outcomes import Run, RunOutcomes
from .resources import WorkerResources
from .run_ledger import Begin, dispatch_run_id
from .runtime import as_coroutine
from .soft_time_limit import SoftTimeLimitGuard

logger = logging.getLogger("ormevents.delivery.celery.worker")


class WorkerDelivery(WorkerResources, MalformedMessages):
    """The worker side of delivery for one queue (see module doc)."""

    def __init__(self, settings: DeliverySettings, registry: HandlerRegistry, app: Celery) -> None:
        super().__init__(settings, registry, app)
        self.outcomes = RunOutcomes(self)

    # ----- tasks ------------------------------------------------------------------------

    def dispatch(self, args: tuple[Any, ...], options: Any = None, due: float | None = None,
                 guard: SoftTimeLimitGuard | None = None) -> list[str]:
        """Body of ``ormevents.dispatch`` (see :func:`~ormevents.delivery.celery.fanout.dispatch`);
        its inline runs' completions travel with the next run's begin
        (:meth:`~ormevents.delivery.celery.run_ledger.RunLedger.completions_deferred`)."""
        with self.ledger.completions_deferred():
            return fanout.dispatch(self, args, options, due, guard)

    def dispatch_batch(self, args: tuple[Any, ...], options: Any = None, due: float | None = None,
                       guard: SoftTimeLimitGuard | None = None) -> int:
        """Body of ``ormevents.dispatch_batch`` (see :func:`~ormevents.delivery.celery.batch.dispatch_batch`);
        each run's completion travels with the next begin, as in :meth:`dispatch`."""
        with self.ledger.completions_deferred():
            return batch.dispatch_batch(self, args, options, due, guard)

    def run_batch(self, args: tuple[Any, ...], guard: SoftTimeLimitGuard | None = None, **kwargs: Any) -> int:
        """Body of ``ormevents.run_handler_batch`` (see :func:`~ormevents.delivery.celery.batch.run_batch`);
        each run's completion travels with the next begin, as in :meth:`dispatch`."""
        with self.ledger.completions_deferred():
            return batch.run_batch(self, args, guard, **kwargs)

    def run(self, args: tuple[Any, ...], first_at: float | None = None, first_failed_at: float | None = None,
            options: Any = None, due: float | None = None, queue: str | None = None, run_id: Any = None,
            task_id: str | None = None, guard: SoftTimeLimitGuard | None = None) -> Any:
        """Body of ``ormevents.run_handler``: run one handler on one event (``queue``: the one it was
        sent to; ``run_id``: names the message in the run ledger, else ``task_id`` does; ``guard``
        lets Celery's soft time limit interrupt the handler only). A replayed run, or a retried job
        whose condition had raised (option ``recheck``), runs only if the condition holds now."""
        guard = guard or SoftTimeLimitGuard()
        event, policy_cfg = self.parse(args, 3, "run_handler")
        name, attempt = args[1], args[2]
        if not isinstance(name, str) or not isinstance(attempt, int) or attempt < 0:
            self.reject(f"run_handler needs (event, handler name, attempt >= 0), got {args[1:3]!r}",
                         "run_handler", args)
        run = Run(event, name, attempt, policy_cfg, first_at, first_failed_at, *self.settings.options_from(options))
        run.run_id = run_id if isinstance(run_id, str) and run_id else task_id or f"{run.event_id}:{name}:{attempt}"
        run.queue = queue if isinstance(queue, str) and queue else None
        run.replay = isinstance(options, dict) and options.get("replay") is True
        handler = self.registry.get(name)
        if handler is None:
            logger.error("no handler named %r in this worker (event %s); recorded as failed", name, event.id,
                         extra=run.extra("failed"))
            self.outcomes.fail(run, "UnknownHandler", f"no handler named {name!r} is registered in the worker; "
                               "check ORMEVENTS_IMPORTS", "", ran=False, reason="unknown_handler")
            return None
        recheck = run.replay or (isinstance(options, dict) and options.get("recheck") is True)
        if recheck and not self._checked(run, handler):
            return None
        return self.start(self._bind(run, handler), handler, due, guard)

    def _checked(self, run: Run, handler: Handler) -> bool:
        """Whether ``handler`` still wants the event of a replayed run, or of a retried job its
        condition had failed: a run it does not want is skipped (:meth:`_unwanted`), a condition
        that raises parks the run again (:meth:`park_broken`)."""
        try:
            if handler.wants(run.event):
                return True
        except Exception as error:
            self.park_broken(self._bind(run, handler), error)
            return False
        self._unwanted(run)
        return False

    def park_broken(self, run: Run, error: Exception) -> None:
        """Store ``run`` as a failed job (reason ``condition_error``): its handler's condition
        raised ``error`` on the event, so the handler did not run. A retry evaluates it again."""
        kind, message, trace = condition_failure(error)
        logger.error("condition of handler %s raised %s on event %s; parked as a failed job", run.name, kind,
                     run.event_id, exc_info=error, extra=run.extra("failed"))
        self.outcomes.fail(run, kind, message, trace, ran=False, reason="condition_error")

    def _unwanted(self, run: Run) -> None:
        """Skip a replayed run whose event its handler does not want (pattern or condition): the
        replay's queued status is removed and the run ended in the ledger (counted as ``unwanted``)."""
        logger.warning("handler %s does not listen to event %s (%s); skipping this replayed run", run.name,
                       run.event_id, run.event.name, extra=run.extra("unwanted"))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.status(run.event_id), *handler_fields(run.name, state=None, attempts=None,
                                                                    queued_at=None, last_error=None,
                                                                    result=None, replay=None))
        self.ledger.end(pipe, run.run_id, run.event_id, run.name, "unwanted", "", **run.dequeued())
        pipe.execute()

    def first_run(self, event: Event, handler: Handler, policy_cfg: Any, now: float, options: Any) -> Run:
        """The first run of ``handler`` on ``event`` as a dispatch queues it (its deterministic run id)."""
        run = self._bind(Run(event, handler.name, 0, policy_cfg, now, None, *self.settings.options_from(options)),
                         handler)
        run.run_id, run.token = dispatch_run_id(handler.name), new_token("")
        return run

    def start(self, run: Run, handler: Handler, due: float | None, guard: SoftTimeLimitGuard,
              begun: Begin | None = None) -> Any:
        """Begin ``run`` in the ledger (unless ``begun``: the dispatch did, with the run's token) and
        run it; a handler taking a session gets one first (its id travels in the token)."""
        if handler.wants_session and not (self.settings.mongo_url and self.settings.database):
            # a worker started by `celery worker` refuses to start like this (check_startup); kept as a failed job
            problem = ConfigurationError(self._inbox_missing())
            logger.error("%s; recorded as failed", problem, extra=run.extra("failed"))
            self.outcomes.fail(run, qualname(ConfigurationError), str(problem), "", ran=False)
            return None
        session = self.open_session(handler)  # before the lease: its id travels in the token
        if begun is None:
            run.token, run.inbox = new_token(session_hex(session) if session is not None else ""), handler.wants_session
        try:
            return self._begin(run, handler, due, guard, session, begun)
        finally:
            if session is not None:
                self.end_session(handler, session)

    def _bind(self, run: Run, handler: Handler) -> Run:
        run.queue = handler.queue  # the handler's current routing wins over the message's
        run.policy = handler.retry or self.settings.retry_policy  # never a policy a message names
        return run

    def _begin(self, run: Run, handler: Handler, due: float | None, guard: SoftTimeLimitGuard, session: Any,
               begun: Begin | None = None) -> Any:
        """Run ``run`` unless the ledger's begin (``begun``: already asked by the dispatch) says otherwise."""
        name = run.name
        if begun is None:
            begun = self.ledger.begin(run.run_id, run.event_id, name, run.waiting, run.token, run.ttl,
                                      self.outcomes.running_status(run))
        if begun.state == "busy" and holder_is_dead(begun.holder):  # its process died on this host
            begun = self.ledger.begin(run.run_id, run.event_id, name, run.waiting, run.token, run.ttl,
                                      self.outcomes.running_status(run), takeover=begun.holder)
        if begun.state in ("finished", "done"):
            logger.info("handler %s already %s event %s; skipping this delivery", name,
                        "completed" if begun.state == "done" else "recorded its outcome for", run.event_id,
                        extra=run.extra("duplicate"))
            return None
        if begun.state == "busy":
            self.outcomes.busy(run, begun, due)
            return None
        if begun.holder and session is not None:  # took over from a dead run: abort its open transaction
            self.abort_orphan(handler, begun.holder, run.extra("running"))
        if begun.state == "lost":
            self.outcomes.lost(run, run.policy or self.settings.retry_policy, begun.starts)
            return None
        try:
            return self._run(run, handler, due, guard, session)
        except (redis.RedisError, BrokerUnavailableError):
            self.abandon(run)  # the message is about to be requeued: let its next delivery run the handler again
            raise

    def abandon(self, run: Run) -> None:
        """Undo the start of ``run`` and release its lease, best effort (Redis failed under its
        bookkeeping and the message is requeued): its next delivery runs the handler again."""
        try:
            self.ledger.abandon(run.run_id, run.event_id, run.name, run.waiting, run.token)
        except redis.RedisError:
            logger.warning("could not undo the start of %s on event %s; its next delivery counts a lost run",
                           run.name, run.event_id, extra=run.extra("running"))

    def _run(self, run: Run, handler: Handler, due: float | None, guard: SoftTimeLimitGuard, session: Any) -> Any:
        started = self.outcomes.started(run, due)
        with self.leases.hold(self.keys.lease(run.event_id, run.name), run.token):
            try:
                with guard.interruptible(), handler_span(run.event, run.name, run.attempt) as attach:
                    outcome = self._execute(handler, run, attach, session)
            except Exception as exc:
                metrics().duration.labels(handler=run.name).observe(time.time() - started)
                self.outcomes.failed_attempt(run, run.policy or self.settings.retry_policy, exc)
                return None
            metrics().duration.labels(handler=run.name).observe(time.time() - started)
            self.outcomes.complete(run, outcome)
        return outcome.value

    def _execute(self, handler: Handler, run: Run, attach: Any, session: Any = None) -> InboxOutcome:
        """Call the handler; one taking a session runs in a transaction with its inbox record."""
        if session is None:
            children, value = split_result(self._invoke(handler, run.event, attach), run.event, run.name)
            return InboxOutcome(value, children, applied=True)
        inbox, key, argument = self.inbox, run.event.idempotency_key(run.name), handler.argument(run.event)
        if not handler.is_async:
            return inbox.apply_sync(key, lambda tx: handler.func(argument, tx), run.event, run.name, session)

        async def call(tx: Any) -> Any:
            result = handler.func(argument, tx)
            return await result if inspect.isawaitable(result) else result

        applying = inbox.apply_async(key, call, run.event, run.name, session)
        return self.loop.run(as_coroutine(attach(applying) if attach else applying))

    def _invoke(self, handler: Handler, event: Event, attach: Any = None) -> Any:
        argument = handler.argument(event)
        if not handler.is_async:
            result = handler.func(argument)
            if not inspect.isawaitable(result):
                return result
            awaitable = result  # an async callable object or partial: run it like an async handler
        else:
            awaitable = handler.func(argument)
        self._ensure_loop()
        return self.loop.run(as_coroutine(attach(awaitable) if attach else awaitable))
