"""What happens to a ``run_handler`` message once the ledger decided on it: the state changes.

Each outcome is ONE Redis round trip with the bookkeeping it goes with (see
:mod:`ormevents.delivery.celery.worker` and :mod:`ormevents.delivery.celery.run_ledger`):
``complete`` (one script: JSON result under ``done:<event id>``, chained events into the
schedule, status succeeded, the lease released, fenced completions reported), ``failed_attempt``
(a retry into the schedule after the policy's delay, status retrying), ``lost`` (an earlier
delivery's process died: a failed attempt too, retried while the policy allows, else a failed
job with reason ``worker_lost``), ``fail`` (a :class:`~ormevents.jobs.records.FailedJob`, status
failed) and ``busy`` (another run holds the lease: the message waits in the schedule until the
lease ends, never dropped). ``started`` only logs and counts: the ledger's ``begin`` wrote the
running state. Every outcome ends the run in the ledger, which moves the gauges and counters
once per message, however often it is delivered, and releases the run's lease. Each is logged
with ``extra={"event_id", "handler", "attempt", "state"}`` and counted in the metrics.
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
from ...jobs.schedule_codec import pack
from ...jobs.status import StatusWriter, handler_fields
from ..metrics import metrics
from .config import DeliverySettings
from .inbox import InboxOutcome
from .run_ledger import Begin, RunLedger
from .sending import (
    Sender,
    dispatch_message,
    event_member,
    recheck_member,
    retry_member,
    run_message,
)

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
        self.token = ""  # names this delivery in the run's lease (set when it begins)
        self.inbox = False  # the handler's effect commits with a MongoDB inbox record
        self.queue: str | None = None  # the broker queue of the run: from the message, then the handler
        self.policy: RetryPolicy | None = None  # the policy the worker applies (None: handler unknown)
        self.replay = False  # sent by event_bus.replay() (its options say so; retries keep them)

    def extra(self, state: str) -> dict[str, Any]:
        """The structured logging context of this run in ``state``."""
        return {"event_id": self.event_id, "event_name": self.event.name, "handler": self.name,
                "attempt": self.attempt + 1, "state": state, **({"replay": True} if self.replay else {})}

    @property
    def waiting(self) -> str:
        """The gauge this run waited in: a first attempt was ``queued``, a retry ``scheduled``."""
        return "queued" if self.attempt == 0 else "scheduled"

    def dequeued(self) -> dict[str, int]:
        """The gauge move of this run leaving :attr:`waiting`."""
        return {self.waiting: -1}

    def options(self) -> dict[str, Any]:
        """The options a retry message carries on."""
        return {"failed_jobs": self.retention.model_dump(), "status_ttl": self.ttl,
                **({"replay": True} if self.replay else {})}


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


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

    def abandon(self, run: Run) -> None: ...


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
        """Log and count that ``run`` starts now (the ledger's begin wrote it); returns the time. A
        first attempt's start is logged at DEBUG (its outcome follows at INFO, as Celery's own task
        lines do); a retry's or a replay's at INFO."""
        now = time.time()
        metrics().delivered.labels(handler=run.name).inc()
        if run.attempt == 0 and due is not None:
            metrics().latency.labels(handler=run.name).observe(max(0.0, now - due))
        level = logging.INFO if run.attempt or run.replay else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(level, "handler %s started on event %s (attempt %d%s)", run.name, run.event_id,
                       run.attempt + 1, ", replay" if run.replay else "", extra=run.extra("running"))
        return now

    @staticmethod
    def running_status(run: Run) -> dict[str, str]:
        """The status fields the ledger's begin writes for a run that starts now."""
        return handler_fields(run.name, state="running", attempts=run.attempt + 1, started_at=time.time(),
                              next_attempt_at=None)

    def complete(self, run: Run, outcome: InboxOutcome) -> None:
        """Record the run's success (result, chained events, status, lease) in one script, then log
        the ledger's verdict (``ok``, ``ok-late``, ``fenced`` or ``already``, see
        :meth:`~ormevents.delivery.celery.run_ledger.RunLedger.complete`). Inside the ledger's
        :meth:`~ormevents.delivery.celery.run_ledger.RunLedger.completions_deferred` the script
        travels with the next round trip; if that fails, the run is abandoned (run again)."""
        now = time.time()
        status = handler_fields(run.name, state="succeeded", result=outcome.value, finished_at=now, last_error=None)
        children = [(event_member(child.id), pack(dispatch_message(child.to_dict(), run.policy_cfg)), now)
                    for child in outcome.children]
        if outcome.applied:
            metrics().succeeded.labels(handler=run.name).inc()
        self.ledger.complete_later(run.run_id, run.event_id, run.name, run.token, _json(outcome.value), run.ttl,
                                   status, children, lambda verdict, holder: self._report(run, outcome, verdict, holder),
                                   lambda: self.delivery.abandon(run))

    @staticmethod
    def _report(run: Run, outcome: InboxOutcome, verdict: str, holder: str) -> None:
        if not outcome.applied:
            logger.info("handler %s had already applied its effect on event %s (MongoDB inbox record found): "
                        "skipped it, kept the first run's result", run.name, run.event_id, extra=run.extra("duplicate"))
        elif verdict in ("ok", "ok-late"):
            logger.info("handler %s completed event %s (%d chained events)%s", run.name, run.event_id,
                        len(outcome.children), "; its lease had lapsed, no other run took it" if verdict == "ok-late"
                        else "", extra=run.extra("succeeded"))
        elif run.inbox:
            logger.info("handler %s completed event %s after another run took its lease over (%s); the MongoDB "
                        "inbox kept the effect once", run.name, run.event_id, holder or verdict,
                        extra=run.extra("succeeded"))
        else:
            logger.warning("handler %s completed event %s, but its run was fenced (%s): another run %s, so its "
                           "effect may have happened twice; make it idempotent (event.idempotency_key) or give it "
                           "a session", run.name, run.event_id, verdict,
                           f"holds its lease ({holder})" if holder else "completed it first", extra=run.extra("fenced"))

    def busy(self, run: Run, begun: Begin, due: float | None) -> float:
        """Another run holds the lease: send this message again when the lease ends (copies of one
        message wait as one schedule entry); returns the delay."""
        delay = max(begun.pttl_ms, 0) / 1000 + 0.05
        message = run_message(run.event.to_dict(), run.name, run.attempt, run.policy_cfg, run.first_at,
                              queue=run.queue, first_failed_at=run.first_failed_at, options=run.options(), due=due,
                              run_id=run.run_id)
        pipe = self.redis.pipeline(transaction=True)
        self.sender.schedule.add(recheck_member(run.event_id, run.name, run.run_id), message, time.time() + delay,
                                 pipe=pipe)
        pipe.hincrby(self.keys.stats, "busy", 1)
        pipe.execute()
        logger.info("handler %s is already running on event %s (%s); this delivery waits %.2f s in the schedule, "
                    "until that run's lease ends", run.name, run.event_id, begun.holder, delay, extra=run.extra("busy"))
        return delay

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
        self.ledger.end(pipe, run.run_id, run.event_id, run.name, "retried", run.token, running=-1, scheduled=1)
        pipe.execute()
        metrics().retried.labels(handler=run.name).inc()
        return delay

    def fail(self, run: Run, error_type: str, message: str, trace: str, ran: bool = True,
             reason: FailureReason = "handler_error") -> None:
        """Store the run as a :class:`FailedJob` (``ran=False``: the handler never started, so this
        run is not counted in its ``attempts``). ``unknown_handler`` and ``condition_error`` are
        also counted in the stats hash under their name, in the same round trip."""
        now = time.time()
        job = FailedJob(
            id=FailedJob.make_id(run.event_id, run.name), queue=self.settings.queue_name, handler=run.name,
            event=run.event.to_dict(), event_id=run.event_id, event_name=run.event.name, model=run.event.model,
            error_type=error_type, error_message=message, traceback=trace[-20000:], attempts=run.attempt + ran,
            retry_policy=self._recorded_policy(run),
            first_attempt_at=_when(run.first_at), first_failed_at=_when(run.first_failed_at or now),
            failed_at=datetime.fromtimestamp(now, UTC), worker=self.delivery.worker_name, handler_queue=run.queue,
            reason=reason,
        )
        pipe = self.redis.pipeline(transaction=True)
        self.store.record(job, retention=run.retention, pipe=pipe, now=now)
        self.status.handler(pipe, run.event_id, run.name, run.ttl, state="failed", attempts=run.attempt + ran,
                            last_error=f"{error_type}: {message}", finished_at=now, next_attempt_at=None)
        self.ledger.end(pipe, run.run_id, run.event_id, run.name, "failed", run.token,
                        **({"running": -1} if ran else run.dequeued()))
        if reason in ("unknown_handler", "condition_error"):
            pipe.hincrby(self.keys.stats, reason, 1)
        pipe.execute()
        metrics().failed.labels(handler=run.name).inc()

    @staticmethod
    def _recorded_policy(run: Run) -> dict[str, Any] | None:
        """The policy a failed job records: the one the worker applied (the handler's own, else
        the default the event carried); for an unknown handler, what the event carried."""
        if run.policy is not None:
            return run.policy.to_config()
        return run.policy_cfg if isinstance(run.policy_cfg, dict) else None
