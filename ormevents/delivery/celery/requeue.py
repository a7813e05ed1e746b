"""Retrying and removing failed jobs (sync; the bus runs these on its thread pool, the CLI directly).

Retrying a job first *claims* it (one Lua script: the record must exist and nobody else may
hold a claim), then sends a fresh ``run_handler`` message for the same event id and handler
with attempt 0, then removes the record and remembers the retry for an hour. Two operators
retrying the same job at once (CLI and API, two terminals, two bulk retries) therefore send
it once: the others get :class:`~ormevents.errors.JobAlreadyRetriedError`, naming who retried
it and when. If the broker does not accept the message
(:class:`~ormevents.errors.BrokerUnavailableError`), the claim is released and the record
stays. The claim keeps the record stored while the message is sent, so a retrying process
that dies half-way loses nothing: its claim expires after 60 s. The removal is a
compare-and-delete, so a retried run that fails again before the removal keeps its new record.
A job parked because the handler's condition raised (reason ``condition_error``) is sent with
the option ``recheck``: its run evaluates the condition again, and runs the handler only if it
now holds (a condition that still raises parks the job again). The handler's completion record
for that event (``done:<event id>``) is kept: if another run of
the handler completed the event meanwhile, the retried run is skipped (and says so in the
worker's log) instead of applying the effect a second time.

Bulk operations walk the filter's pages by cursor and skip jobs removed or retried meanwhile, and
parked malformed messages (:class:`~ormevents.errors.JobNotRetryableError` when retried alone).

Example::

    requeue = Requeue(store, sender)
    requeue.retry("0b6f...:billing.activate")
    sum(requeue.each_page("retry", FailedJobFilter(handler="billing.activate")))    # -> how many
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from ...errors import JobAlreadyRetriedError, JobNotFoundError, JobNotRetryableError
from ...jobs.records import FailedJob, FailedJobFilter
from ...jobs.redis_store import CLAIM_TTL, FailedJobStore
from ...jobs.status import StatusWriter
from .sending import Sender, run_message

logger = logging.getLogger("ormevents.delivery.celery.requeue")

BATCH = 100


class Requeue:
    """Retry/remove operations over one queue's :class:`FailedJobStore`."""

    def __init__(self, store: FailedJobStore, sender: Sender, status_ttl: int = 7 * 24 * 3600) -> None:
        self.store = store
        self.sender = sender
        self.status = StatusWriter(store.keys)
        self.status_ttl = status_ttl
        self.operator = f"{socket.gethostname()}:{os.getpid()}"  # who retried, in "already retried"

    def retry(self, job_id: str) -> FailedJob:
        """Re-enqueue ``job_id`` once, however many retry it at the same time.

        :class:`JobAlreadyRetriedError` if another retry holds or sent it (within the last hour),
        :class:`JobNotFoundError` if there is no such job, :class:`JobNotRetryableError` for a
        parked malformed message.
        """
        token = json.dumps({"by": self.operator, "at": time.time(), "claim": uuid.uuid4().hex[:12]})
        state, value = self.store.claim(job_id, token, ttl=self._claim_ttl())
        if state != "ok" or value is None:
            raise self._refused(job_id, state, value)
        job = FailedJob.model_validate_json(value)
        if not job.retryable:
            self.store.release(job_id, token)
            raise JobNotRetryableError(
                f"failed job {job_id!r} is a malformed message ({job.error_message}): there is no event to run "
                f"again; read it with `ormevents failed show {job_id}` and remove it")
        try:
            self._retry(job, value)
        except BaseException:
            self.store.release(job_id, token)
            raise
        if self.store.retried(job_id, value, token) == -1:
            logger.info("failed job %s failed again before its record was removed; keeping the new one", job_id)
        return job

    def remove(self, job_id: str) -> None:
        """Delete ``job_id``; :class:`JobNotFoundError` if there is no such job."""
        if self.store.remove(job_id) != 1:
            raise JobNotFoundError(f"no failed job {job_id!r} in queue {self.store.queue_name!r}")
        logger.info("failed job %s removed", job_id, extra={"job_id": job_id})

    def retry_batch(self, filters: FailedJobFilter, cursor: str | None) -> tuple[int, str | None]:
        """Retry one page of matching jobs; returns (how many, the next cursor)."""
        page = self.store.page(filters, limit=BATCH, cursor=cursor)
        done = 0
        for job in page.items:
            try:
                self.retry(job.id)
            except (JobNotFoundError, JobNotRetryableError):  # gone, retried by someone else, or malformed: skip it
                continue
            done += 1
        return done, page.next_cursor

    def remove_batch(self, filters: FailedJobFilter, cursor: str | None) -> tuple[int, str | None]:
        """Remove one page of matching jobs; returns (how many, the next cursor)."""
        page = self.store.page(filters, limit=BATCH, cursor=cursor)
        return sum(self.store.remove(job.id) == 1 for job in page.items), page.next_cursor

    def each_page(self, verb: str, filters: FailedJobFilter) -> Iterator[int]:
        """Retry (``verb="retry"``) or remove every job matching ``filters``, one page of
        :data:`BATCH` at a time; yields how many each page changed (for a progress bar)."""
        step = self.retry_batch if verb == "retry" else self.remove_batch
        cursor: str | None = None
        while True:
            done, cursor = step(filters, cursor)
            yield done
            if cursor is None:
                return

    def _claim_ttl(self) -> float:
        """How long a retry may hold its job: longer than the longest send the publish-retry
        policy allows (each try bounded by its timeout, waits between tries), at least a minute."""
        policy = self.sender.settings.publish_retry
        longest_send = (policy.max_retries + 1) * (2 * policy.timeout + 1 + policy.interval_max)
        return max(CLAIM_TTL, 2 * longest_send)

    def _retry(self, job: FailedJob, raw: bytes) -> None:
        client = self.store.client
        pipe = client.pipeline(transaction=True)  # a handler that completed meanwhile keeps its result: the run skips it
        self.status.handler(pipe, job.event_id, job.handler, self.status_ttl, state="queued", attempts=0,
                            last_error=None, next_attempt_at=None)
        self.status.gauge(pipe, job.handler, queued=1)
        pipe.execute()
        recheck = {"recheck": True} if job.reason == "condition_error" else None  # the run evaluates it again
        message = run_message(job.event, job.handler, 0, job.retry_policy, time.time(), queue=job.handler_queue,
                              options=recheck)
        message["id"] = f"{job.id}:retry:{uuid.uuid4().hex[:12]}"
        try:
            self.sender.send(message)  # raises BrokerUnavailableError: the record stays
        except BaseException:
            pipe = client.pipeline(transaction=True)  # undo "queued": the job is still failed
            self.status.handler(pipe, job.event_id, job.handler, self.status_ttl, state="failed",
                                attempts=job.attempts, last_error=f"{job.error_type}: {job.error_message}")
            self.status.gauge(pipe, job.handler, queued=-1)
            pipe.execute()
            raise
        logger.info("failed job %s re-enqueued", job.id,
                    extra={"job_id": job.id, "event_id": job.event_id, "handler": job.handler})

    def _refused(self, job_id: str, state: str, holder: bytes | None) -> JobNotFoundError:
        where = f"in queue {self.store.queue_name!r}"
        if holder is None:
            return JobNotFoundError(f"no failed job {job_id!r} {where}")
        try:
            claim = json.loads(holder)
            who, when = claim["by"], datetime.fromtimestamp(float(claim["at"]), UTC).isoformat(timespec="seconds")
        except (ValueError, KeyError, TypeError):
            who, when = "another operator", "just now"
        event_id = job_id.partition(":")[0]  # event ids are UUIDs; handler names may hold ":"
        doing = "is being sent now" if state == "claimed" else "was sent"
        return JobAlreadyRetriedError(
            f"failed job {job_id!r} {where} was already retried by {who} at {when} (its new run {doing}); "
            f"nothing to do: follow it with `ormevents events status {event_id}`")
