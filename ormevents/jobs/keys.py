"""Redis key names, all under the queue name so one queue's state never mixes with another's.

Example::

    >>> Keys("shop:events").schedule
    'shop:events:schedule'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Every Redis key ormevents uses for queue ``prefix``."""

    prefix: str

    @property
    def schedule(self) -> str:
        """ZSET member -> due time (epoch seconds) of delayed events and retries."""
        return f"{self.prefix}:schedule"

    @property
    def inflight(self) -> str:
        """ZSET member -> lease end of entries a poller took and is sending."""
        return f"{self.prefix}:schedule:inflight"

    @property
    def inflight_claims(self) -> str:
        """HASH member -> ``<owner>\\n<message JSON>`` of the entries a poller took and is sending."""
        return f"{self.prefix}:schedule:claims"

    @property
    def payloads(self) -> str:
        """HASH member -> JSON message to send when the member is due."""
        return f"{self.prefix}:schedule:payloads"

    @property
    def stats(self) -> str:
        """HASH of counters (dispatched, unmatched, retried, failed, rejected, ...)."""
        return f"{self.prefix}:stats"

    def done(self, event_id: str) -> str:
        """HASH handler -> JSON result of the handlers that completed ``event_id``."""
        return f"{self.prefix}:done:{event_id}"

    def runs(self, event_id: str) -> str:
        """HASH run id -> deliveries that started it (and ``<run id>:end`` once it recorded an
        outcome) of ``event_id``'s run_handler messages (see :mod:`ormevents.delivery.celery.run_ledger`)."""
        return f"{self.prefix}:runs:{event_id}"

    def lease(self, event_id: str, handler: str) -> str:
        """STRING: the token of the run of ``handler`` on ``event_id`` in progress (expires unless
        renewed; see :mod:`ormevents.delivery.celery.run_ledger`)."""
        return f"{self.prefix}:lease:{event_id}:{handler}"

    @property
    def failed_jobs(self) -> str:
        """HASH job id -> FailedJob JSON."""
        return f"{self.prefix}:failed:jobs"

    @property
    def failed_index(self) -> str:
        """ZSET job id -> failed_at."""
        return f"{self.prefix}:failed:index"

    def failed_by_handler(self, handler: str) -> str:
        """ZSET job id -> failed_at of one handler."""
        return self.failed_facet("handler", handler)

    def failed_facet(self, kind: str, value: str) -> str:
        """ZSET job id -> failed_at of the jobs whose ``kind`` (handler, event, model,
        exception) is ``value``; the Lua scripts of :mod:`ormevents.jobs.redis_store` build the
        same names."""
        return f"{self.prefix}:failed:{kind}:{value}"

    def failed_claim(self, job_id: str) -> str:
        """STRING: the token of the retry currently sending ``job_id`` (expires)."""
        return f"{self.prefix}:failed:claim:{job_id}"

    def failed_retried(self, job_id: str) -> str:
        """STRING: who retried ``job_id`` and when, for a while after (expires)."""
        return f"{self.prefix}:failed:retried:{job_id}"

    @property
    def failed_handlers(self) -> str:
        """SET of the handler names that have failed jobs."""
        return f"{self.prefix}:failed:handlers"

    @property
    def gauges(self) -> str:
        """HASH ``<queued|scheduled|running>|<handler>`` -> how many runs are in that state."""
        return f"{self.prefix}:gauges"

    @property
    def outbox_sent(self) -> str:
        """ZSET event id -> when it was handed to the broker, of outbox records (dropped a minute
        after MongoDB's clean-up; see :mod:`ormevents.delivery.celery.outbox`)."""
        return f"{self.prefix}:outbox:sent"

    def relay_lease(self, collection: str) -> str:
        """STRING: the token of the relay working ``collection`` (expires unless renewed)."""
        return f"{self.prefix}:relay:lease:{collection}"

    def relay_fence(self, collection: str) -> str:
        """STRING counter: incremented each time a new relay takes ``collection``'s lease."""
        return f"{self.prefix}:relay:fence:{collection}"

    @property
    def relay_passes(self) -> str:
        """HASH collection -> JSON of the last relay pass (when, by whom, how many published)."""
        return f"{self.prefix}:relay:passes"

    @property
    def workers(self) -> str:
        """HASH worker name -> JSON heartbeat (queues, pid, last seen) of the workers of this queue."""
        return f"{self.prefix}:workers"

    @property
    def handler_totals(self) -> str:
        """HASH ``<succeeded|retried|failed>|<handler>`` -> how many runs ended so (since the start)."""
        return f"{self.prefix}:stats:handlers"

    def activity(self, minute: int) -> str:
        """HASH counter -> count of the minute ``minute`` (epoch seconds // 60), see :mod:`ormevents.jobs.activity`."""
        return f"{self.prefix}:activity:{minute}"

    def failed_values(self, kind: str) -> str:
        """SET of the values of ``kind`` (event, model, exception) that have failed jobs (handlers:
        :attr:`failed_handlers`)."""
        return f"{self.prefix}:failed:values:{kind}"

    def status(self, event_id: str) -> str:
        """HASH of the delivery status of ``event_id`` (see :mod:`ormevents.jobs.status`)."""
        return f"{self.prefix}:status:{event_id}"
