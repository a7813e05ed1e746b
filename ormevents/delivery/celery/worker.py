"""What a worker does with ormevents' two tasks: fan an event out, run one handler on it.

* :meth:`WorkerDelivery.dispatch` — match the event against the handler registry (pattern and
  condition) and send one ``run_handler`` message per matching handler. No match: counted
  (``stats.unmatched``) and acknowledged. Handlers that already completed this event are
  skipped, so a redelivered dispatch does not run them again.
* :meth:`WorkerDelivery.run` — run one handler (sync in the task thread, async on the
  process's :class:`~ormevents.delivery.celery.runtime.WorkerLoop`). Each delivery is counted first in
  the :class:`~ormevents.delivery.celery.run_ledger.RunLedger`: a message whose earlier delivery died
  with its process is a failed attempt (retried by the policy, then a failed job with reason
  ``worker_lost``), never an endless loop. On success its JSON result and
  the events it returned are written in ONE Redis transaction (result under
  ``done:<event id>``, children into the schedule, due now), so a redelivered task sees the
  result and neither runs again nor republishes. On failure: a retry goes into the Redis
  schedule after the policy's delay, or, when retries are over, a :class:`FailedJob` is stored.

Every state change (queued, running, succeeded, retrying, failed) is written to the event's
status (:mod:`ormevents.jobs.status`) in the same pipeline as the bookkeeping it goes with, logged
with ``extra={"event_id", "handler", "attempt", "state"}``, and counted in the Prometheus
metrics when they are enabled (:mod:`ormevents.delivery.metrics`).

Malformed messages are parked as failed jobs with reason ``malformed_message`` (see
:mod:`ormevents.delivery.celery.malformed`; counted as ``stats.rejected``) and then rejected; the worker
keeps running. Nothing in a message is ever imported: handler names are looked up in the
registry, and a retry policy carried by a message resolves exception names only among classes
the worker has loaded (:meth:`~ormevents.handlers.retry.RetryPolicy.from_message`).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import time
from typing import Any

import redis
from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints
from celery.exceptions import Reject  # type: ignore[import-untyped]  # celery ships no type hints
from pydantic import ValidationError

from ...errors import BrokerUnavailableError, OrmEventsError
from ...events.event import Event
from ...handlers.registry import Handler, HandlerRegistry
from ...handlers.results import split_result
from ...handlers.retry import RetryPolicy
from ...jobs import activity
from ...jobs.records import FailedJob
from ...jobs.redis_store import FailedJobStore
from ...jobs.status import StatusWriter
from ..metrics import metrics
from ..tracing import handler_span
from .config import DeliverySettings
from .malformed import malformed_job
from .outcomes import Run, RunOutcomes
from .run_ledger import RunLedger
from .runtime import WorkerLoop, as_coroutine, hooks
from .scheduler import RedisSchedule
from .sending import Sender, run_message
from .soft_time_limit import SoftTimeLimitGuard

logger = logging.getLogger("ormevents.delivery.celery.worker")


class WorkerDelivery:
    """The worker side of delivery for one queue (see module doc)."""

    def __init__(self, settings: DeliverySettings, registry: HandlerRegistry, app: Celery) -> None:
        self.settings = settings
        self.registry = registry
        self.app = app
        self.keys = settings.keys
        self.loop = WorkerLoop()
        self.status = StatusWriter(self.keys)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics_port: int | None = None
        self._pid: int | None = None
        self._redis: redis.Redis | None = None
        self._sender: Sender | None = None
        self._store: FailedJobStore | None = None
        self._ledger: RunLedger | None = None
        self.outcomes = RunOutcomes(self)

    # ----- per-process resources (never shared across fork) ------------------------------

    @property
    def redis(self) -> redis.Redis:
        """This process's Redis client."""
        self._ensure_process()
        assert self._redis is not None
        return self._redis

    @property
    def sender(self) -> Sender:
        """This process's :class:`Sender` (broker + schedule)."""
        self._ensure_process()
        assert self._sender is not None
        return self._sender

    @property
    def ledger(self) -> RunLedger:
        """This process's :class:`RunLedger` (deliveries of run_handler messages)."""
        self._ensure_process()
        assert self._ledger is not None
        return self._ledger

    @property
    def store(self) -> FailedJobStore:
        """This process's :class:`FailedJobStore`."""
        self._ensure_process()
        assert self._store is not None
        return self._store

    def _ensure_process(self) -> None:
        if self._pid == os.getpid() and self._redis is not None:
            return
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        self._redis = client
        self._sender = Sender(self.app, RedisSchedule(client, self.keys), self.settings)
        self._store = FailedJobStore(client, self.settings.queue_name, self.settings.failed_jobs)
        self._ledger = RunLedger(client, self.keys, self.settings.result_ttl)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._pid = os.getpid()

    def process_started(self) -> None:
        """Start this process's loop and run the start hooks (from ``worker_process_init``)."""
        self._pid = None
        self.loop = WorkerLoop()
        self.loop.start(hooks.start)

    def process_stopping(self) -> None:
        """Run the stop hooks and close the loop (from ``worker_process_shutdown``)."""
        self.loop.close(hooks.stop)

    def count(self, stat: str, amount: int = 1) -> None:
        """Increment counter ``stat`` in the queue's stats hash (best effort)."""
        try:
            self.redis.hincrby(self.keys.stats, stat, amount)
        except redis.RedisError:
            logger.warning("could not count %s in Redis", stat, exc_info=True)

    # ----- tasks ------------------------------------------------------------------------

    def dispatch(self, args: tuple[Any, ...], options: Any = None, due: float | None = None) -> list[str]:
        """Body of ``ormevents.dispatch``: send one run_handler per matching handler."""
        event, policy = self._parse(args, 1, "dispatch")
        wire = event.to_dict()
        _, ttl = self.settings.options_from(options)
        selected = self.registry.match(event)
        pipe = self.redis.pipeline(transaction=True)
        if not selected:
            self.status.event(pipe, wire, "unmatched", ttl)
            pipe.hincrby(self.keys.stats, "unmatched", 1)
            activity.count(pipe, self.keys, "unmatched")
            pipe.execute()
            logger.info("event %s %s matched no handler", event.name, event.id,
                        extra={"event_id": str(event.id), "state": "unmatched"})
            return []
        done = self._done_handlers(str(event.id))
        pending = [handler for handler in selected if handler.name not in done]
        names = [handler.name for handler in pending]
        self.status.event(pipe, wire, "dispatched", ttl, names)  # queued before any run can start
        for name in names:
            self.status.gauge(pipe, name, queued=1)
        pipe.hincrby(self.keys.stats, "dispatched", 1)
        activity.count(pipe, self.keys, "dispatched")
        pipe.execute()
        for handler in pending:
            self.sender.send(run_message(wire, handler.name, 0, policy, time.time(), queue=handler.queue,
                                         options=options, due=due))
            logger.debug("handler %s queued for event %s", handler.name, event.id,
                         extra={"event_id": str(event.id), "handler": handler.name, "attempt": 0, "state": "queued"})
        return names

    def run(self, args: tuple[Any, ...], first_at: float | None = None, first_failed_at: float | None = None,
            options: Any = None, due: float | None = None, queue: str | None = None, run_id: Any = None,
            task_id: str | None = None, guard: SoftTimeLimitGuard | None = None) -> Any:
        """Body of ``ormevents.run_handler``: run one handler on one event (``queue``: the one it was
        sent to; ``run_id``: names the message in the run ledger, else ``task_id`` does; ``guard``
        lets Celery's soft time limit interrupt the handler only)."""
        guard = guard or SoftTimeLimitGuard()
        event, policy_cfg = self._parse(args, 3, "run_handler")
        name, attempt = args[1], args[2]
        if not isinstance(name, str) or not isinstance(attempt, int) or attempt < 0:
            self._reject(f"run_handler needs (event, handler name, attempt >= 0), got {args[1:3]!r}",
                         "run_handler", args)
        run = Run(event, name, attempt, policy_cfg, first_at, first_failed_at, *self.settings.options_from(options))
        run.run_id = run_id if isinstance(run_id, str) and run_id else task_id or f"{run.event_id}:{name}:{attempt}"
        run.queue = queue if isinstance(queue, str) and queue else None
        handler = self.registry.get(name)
        if handler is None:
            logger.error("no handler named %r in this worker (event %s); recorded as failed", name, event.id,
                         extra=run.extra("failed"))
            self.count("unknown_handler")
            self.outcomes.fail(run, "UnknownHandler", f"no handler named {name!r} is registered in the worker; "
                               "check ORMEVENTS_IMPORTS", "", ran=False, reason="unknown_handler")
            return None
        run.queue = handler.queue  # the handler's current routing wins over the message's
        run.policy = handler.retry or self._policy(policy_cfg)
        state, starts = self.ledger.begin(run.run_id, run.event_id, name, run.waiting)
        if state in ("finished", "done"):
            logger.info("handler %s already %s event %s; skipping the redelivery", name,
                        "completed" if state == "done" else "recorded its outcome for", run.event_id,
                        extra=run.extra("duplicate"))
            return None
        if state == "lost":
            self.outcomes.lost(run, run.policy, starts)
            return None
        try:
            return self._run(run, handler, due, guard)
        except (redis.RedisError, BrokerUnavailableError):
            try:  # the message is about to be requeued: let its next delivery run the handler again
                self.ledger.abandon(run.run_id, run.event_id, name, run.waiting)
            except redis.RedisError:
                logger.warning("could not undo the start of %s on event %s; its next delivery counts a lost run",
                               name, run.event_id, extra=run.extra("running"))
            raise

    def _run(self, run: Run, handler: Handler, due: float | None, guard: SoftTimeLimitGuard) -> Any:
        started = self.outcomes.started(run, due)
        try:
            with guard.interruptible(), handler_span(run.event, run.name, run.attempt) as attach:
                result = self._invoke(handler, run.event, attach)
            children, value = split_result(result, run.event, run.name)
        except Exception as exc:
            metrics().duration.labels(handler=run.name).observe(time.time() - started)
            self.outcomes.failed_attempt(run, run.policy or self.settings.retry_policy, exc)
            return None
        metrics().duration.labels(handler=run.name).observe(time.time() - started)
        self.outcomes.complete(run, value, children)
        return value

    def _invoke(self, handler: Handler, event: Event, attach: Any = None) -> Any:
        argument = handler.argument(event)
        if not handler.is_async:
            result = handler.func(argument)
            if not inspect.isawaitable(result):
                return result
            awaitable = result  # an async callable object or partial: run it like an async handler
        else:
            awaitable = handler.func(argument)
        if not self.loop.running:  # solo/threads pools send no worker_process_init
            self.loop.start(hooks.start)
        return self.loop.run(as_coroutine(attach(awaitable) if attach else awaitable))

    # ----- helpers ----------------------------------------------------------------------

    def _policy(self, config: Any) -> RetryPolicy:
        """The default policy an event carries (data only, see :meth:`RetryPolicy.from_message`), else the worker's."""
        if isinstance(config, dict):
            try:
                return RetryPolicy.from_message(config)
            except ValidationError as exc:
                logger.warning("unusable retry policy in message %.300r (%s); using the worker default", config,
                               "; ".join(error["msg"] for error in exc.errors()))
        return self.settings.retry_policy

    def _done_handlers(self, event_id: str) -> set[str]:
        return {k.decode() if isinstance(k, bytes) else k for k in self.redis.hkeys(self.keys.done(event_id))}

    def _parse(self, args: tuple[Any, ...], policy_index: int, task: str) -> tuple[Event, Any]:
        if len(args) <= policy_index or not isinstance(args[0], dict):
            self._reject(f"{task} got malformed arguments {args!r:.300}", task, args)
        try:
            event = Event.from_dict(args[0])
        except (ValidationError, OrmEventsError, KeyError, TypeError, ValueError) as exc:
            self._reject(f"{task} got an invalid event {args[0]!r:.300}: {exc}", task, args)
        return event, args[policy_index]

    def _reject(self, reason: str, task: str, args: tuple[Any, ...]) -> Any:
        logger.error("rejecting malformed message: %s", reason)
        self.park(json.dumps({"task": f"ormevents.{task}", "args": list(args)}, default=repr), reason, None)
        raise Reject(reason, requeue=False)

    def park(self, raw: str, problem: str, broker_queue: str | None) -> FailedJob:
        """Keep a message this worker cannot use as a failed job with reason ``malformed_message``
        (see :mod:`ormevents.delivery.celery.malformed`), counted as ``stats.rejected``."""
        now = time.time()
        job = malformed_job(raw, problem, self.settings.queue_name, self.worker_name, broker_queue, now)
        pipe = self.redis.pipeline(transaction=True)
        self.store.record(job, pipe=pipe, now=now)
        pipe.hincrby(self.keys.stats, "rejected", 1)
        pipe.execute()
        logger.error("parked a malformed message as failed job %s: %s", job.id, problem,
                     extra={"job_id": job.id, "state": "failed"})
        return job
