"""What happens to a ``run_handler`` message once its handler ran: the state changes.

Each outcome is written in ONE Redis pipeline with the bookkeeping it goes with (see
:mod:`ormevents.delivery.celery.worker`): ``started`` (status running), ``complete`` (JSON result
under ``done:<event id>``, chained events into the schedule, status succeeded), ``failed_attempt``
(a retry into the schedule after the policy's delay, status retrying), ``lost`` (an earlier
delivery's process died: a failed attempt too, retried while the policy allows, else a failed
job with reason ``worker_lost``) and ``fail`` (a :class:`~ormevents.jobs.records.FailedJob`, status
failed). Every outcome pipeline also ends the run in the :class:`~ormevents.delivery.celery.run_ledger.RunLedger`,
which moves the gauges and counters once per message, however often it is delivered. Each is
logged with ``extra={"event_id", "handler", "attempt", "state"}`` and counted in the metrics.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

from ...events.event import Event
from ...handlers.results import qualname
from ...handlers.retry import RetryPolicy
from ...jobs.keys import Keys
from ...jobs.records import FailedJob, FailedJobRetention, FailureReason
from ...jobs.redis_store import FailedJobStore
from ...jobs.status import StatusWriter
from ..metrics import metrics
from .config import DeliverySettings
from .run_ledger import RunLedger
from .sending import Sender, dispatch_message, event_member, retry_member, run_message

logger = logging.getLogger("ormevents.delivery.celery.worker")

WORKER_LOST = "ormevents.WorkerLost"
"""The ``error_type`` of a run whose process died (failed-job reason ``worker_lost``)."""


class Run:
    """One ``run_handler`` message being processed: what every state change needs."""

    def __init__(self, event: Event, name: str, attempt: int, policy_cfg: Any, first_at: float | None,
                 first_failed_at: float | None, retention: FailedJobRetention, ttl: int) -> None:
        self.event, self.event_id, self.name, self.attempt = event, str(event.id), name, attempt
        self.policy_cfg, self.first_at, self.first_failed_at = policy_cfg, first_at, first_failed_at
        self.retention, self.ttl = retention, ttl
        self.run_id = ""  # names this message in the run ledger (all its deliveries)
        self.queue: str | None = None  # the broker queue of the run: from the message, then the handler
        self.policy: RetryPolicy | None = None  # the policy the worker applies (None: handler unknown)

    def extra(self, state: str) -> dict[str, Any]:
        """The structured logging context of this run in ``state``."""
        return {"event_id": self.event_id, "event_name": self.event.name, "handler": self.name,
                "attempt": self.attempt + 1, "state": state}

    @property
    def waiting(self) -> str:
        """The gauge this run waited in: a first attempt was ``queued``, a retry ``scheduled``."""
        return "queued" if self.attempt == 0 else "scheduled"

    def dequeued(self) -> dict[str, int]:
        """The gauge move of this run leaving :attr:`waiting`."""
        return {self.waiting: -1}

    def options(self) -> dict[str, Any]:
        """The options a retry message carries on."""
        return {"failed_jobs": self.retention.model_dump(), "status_ttl": self.ttl}


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def _error(exc: BaseException) -> str:
    return f"{qualname(type(exc))}: {exc}"


class ProcessResources(Protocol):
    """What outcomes need from the worker's delivery (:class:`~ormevents.delivery.celery.worker.WorkerDelivery`):
    its settings and the per-process clients, created anew after a fork."""

    settings: DeliverySettings
    keys: Keys
    status: StatusWriter
    worker_name: str

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def sender(self) -> Sender: ...

    @property
    def store(self) -> FailedJobStore: ...

    @property
    def ledger(self) -> RunLedger: ...


class RunOutcomes:
    """Writes the outcomes of the runs of one worker delivery (see module doc)."""

    def __init__(self, delivery: ProcessResources) -> None:
        self.delivery = delivery
        self.settings = delivery.settings
        self.keys = delivery.keys
        self.status = delivery.status

    @property
    def redis(self) -> redis.Redis:
        """The delivery's per-process Redis client."""
        return self.delivery.redis

    @property
    def sender(self) -> Sender:
        """The delivery's per-process sender."""
        return self.delivery.sender

    @property
    def store(self) -> FailedJobStore:
        """The delivery's per-process failed-job store."""
        return self.delivery.store

    @property
    def ledger(self) -> RunLedger:
        """The delivery's per-process run ledger."""
        return self.delivery.ledger

    def started(self, run: Run, due: float | None) -> float:
        """Record that ``run`` starts now (status running; the ledger moved the gauges); returns the start time."""
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        self.status.handler(pipe, run.event_id, run.name, run.ttl, state="running", attempts=run.attempt + 1,
                            started_at=now, next_attempt_at=None)
        pipe.execute()
        metrics().delivered.labels(handler=run.name).inc()
        if run.attempt == 0 and due is not None:
            metrics().latency.labels(handler=run.name).observe(max(0.0, now - due))
        logger.info("handler %s started on event %s (attempt %d)", run.name, run.event_id, run.attempt + 1,
                    extra=run.extra("running"))
        return now

    def complete(self, run: Run, value: Any, children: list[Event]) -> None:
        """Store ``value`` as the run's result and schedule ``children``, in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.done(run.event_id), run.name, json.dumps(value, separators=(",", ":")))
        pipe.expire(self.keys.done(run.event_id), self.settings.result_ttl)
        now = time.time()
        for child in children:
            self.sender.schedule.add(event_member(child.id), dispatch_message(child.to_dict(), run.policy_cfg), now, pipe=pipe)
        self.status.handler(pipe, run.event_id, run.name, run.ttl, state="succeeded", result=value,
                            finished_at=now, last_error=None)
        self.ledger.end(pipe, run.run_id, run.event_id, run.name, "succeeded", running=-1)
        pipe.execute()
        metrics().succeeded.labels(handler=run.name).inc()
        logger.info("handler %s completed event %s (%d chained events)", run.name, run.event_id, len(children),
                    extra=run.extra("succeeded"))

    def failed_attempt(self, run: Run, policy: RetryPolicy, exc: BaseException) -> None:
        """Schedule the next attempt after ``policy``'s delay, or store the failed job when over."""
        if not policy.should_retry(exc, run.attempt):
            logger.error("handler %s failed on event %s after %d attempt(s): %r; stored as a failed job",
                         run.name, run.event_id, run.attempt + 1, exc, extra=run.extra("failed"))
            self.fail(run, qualname(type(exc)), str(exc), "".join(traceback.format_exception(exc)))
            return
        delay = self._retry(run, policy, _error(exc))
        logger.warning("handler %s failed on event %s (attempt %d): %r; retrying in %.3f s",
                       run.name, run.event_id, run.attempt + 1, exc, delay, extra=run.extra("retrying"))

    def lost(self, run: Run, policy: RetryPolicy, starts: int) -> None:
        """An earlier delivery of ``run`` started and never recorded an outcome: its process died.

        That counts as a failed attempt: retried after the policy's delay while it allows
        (``max_retries``; a death is retried whatever ``retry_on`` says), else a failed job with
        reason ``worker_lost``. The handler is not run by this delivery.
        """
        message = (f"the process running handler {run.name} died during attempt {run.attempt + 1} (killed, "
                   f"out of memory, os._exit or a crash in native code); the message came back {starts - 1} time(s)")
        if run.attempt < policy.max_retries:
            delay = self._retry(run, policy, f"{WORKER_LOST}: {message}")
            logger.error("%s; retrying in %.3f s", message, delay, extra=run.extra("retrying"))
            return
        logger.error("%s; no retries left, stored as a failed job", message, extra=run.extra("failed"))
        self.fail(run, WORKER_LOST, message, "", reason="worker_lost")

    def _retry(self, run: Run, policy: RetryPolicy, error: str) -> float:
        now = time.time()
        delay = policy.delay(run.attempt)
        message = run_message(run.event.to_dict(), run.name, run.attempt + 1, run.policy_cfg, run.first_at,
                              queue=run.queue, first_failed_at=run.first_failed_at or now, options=run.options())
        pipe = self.redis.pipeline(transaction=True)
        self.sender.schedule.add(retry_member(run.event_id, run.name, run.attempt + 1), message, now + delay, pipe=pipe)
        self.status.handler(pipe, run.event_id, run.name, run.ttl, state="retrying", last_error=error,
                            finished_at=now, next_attempt_at=now + delay)
        self.ledger.end(pipe, run.run_id, run.event_id, run.name, "retried", running=-1, scheduled=1)
        pipe.execute()
        metrics().retried.labels(handler=run.name).inc()
        return delay

    def fail(self, run: Run, error_type: str, message: str, trace: str, ran: bool = True,
             reason: FailureReason = "handler_error") -> None:
        """Store the run as a :class:`FailedJob` (``ran=False``: the handler never started)."""
        now = time.time()
        job = FailedJob(
            id=FailedJob.make_id(run.event_id, run.name), queue=self.settings.queue_name, handler=run.name,
            event=run.event.to_dict(), event_id=run.event_id, event_name=run.event.name, model=run.event.model,
            error_type=error_type, error_message=message, traceback=trace[-20000:], attempts=run.attempt + 1,
            retry_policy=self._recorded_policy(run),
            first_attempt_at=_when(run.first_at), first_failed_at=_when(run.first_failed_at or now),
            failed_at=datetime.fromtimestamp(now, UTC), worker=self.delivery.worker_name, handler_queue=run.queue,
            reason=reason,
        )
        pipe = self.redis.pipeline(transaction=True)
        self.store.record(job, retention=run.retention, pipe=pipe, now=now)
        self.status.handler(pipe, run.event_id, run.name, run.ttl, state="failed", attempts=run.attempt + 1,
                            last_error=f"{error_type}: {message}", finished_at=now, next_attempt_at=None)
        self.ledger.end(pipe, run.run_id, run.event_id, run.name, "failed", **({"running": -1} if ran else run.dequeued()))
        pipe.execute()
        metrics().failed.labels(handler=run.name).inc()

    @staticmethod
    def _recorded_policy(run: Run) -> dict[str, Any] | None:
        """The policy a failed job records: the one the worker applied (the handler's own, else
        the default the event carried); for an unknown handler, what the event carried."""
        if run.policy is not None:
            return run.policy.to_config()
        return run.policy_cfg if isinstance(run.policy_cfg, dict) else None
