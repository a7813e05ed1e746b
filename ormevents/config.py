"""Settings of the event side, as given to ``init(event_config=...)``.

Unknown keys are rejected with a message naming them (EarnORM's ``init`` crashed on its own
documented keys; ours validates them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class OutboxConfig(BaseModel):
    """How the outbox hands events over and keeps them (``event_config={"outbox": {...}}``).

    ``history_seconds``: how long sent events stay in the event history (``_oe_history`` and
    ``_oe_events``; default 7 days; ``0`` keeps none; ``None`` keeps them forever); a model's
    ``history_days`` wins (``docs/history.md``).
    ``cleanup_interval``: seconds between the batched clean-ups of sent records (default 1).
    ``queue_limit``: events waiting in memory for their hand-off, per event loop; beyond it
    an event is left to the relay (default 10,000).
    ``batch_events``: the most events one broker message carries when several are handed over
    together (default 32); ``1`` sends one message per event, for a rolling deploy while workers
    older than 0.2 (which lack the ``ormevents.dispatch_batch`` task) still run.
    ``linger``: while the workers are behind (2 messages or more were waiting in the broker
    queue at the last hand-off, less than 1 s ago), the seconds a hand-off waits for more events to fill a
    message (default 0.01; ``0`` never waits, and spreads every hand-off as when the workers
    keep up). A Redis broker only; ``flush()`` never waits.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    history_seconds: float | None = Field(default=7 * 24 * 3600, ge=0)
    cleanup_interval: float = Field(default=1.0, gt=0)
    queue_limit: int = Field(default=10_000, ge=1)
    batch_events: int = Field(default=32, ge=1, le=1000)
    linger: float = Field(default=0.01, ge=0, le=1)


class EventConfig(BaseModel):
    """Event delivery settings.

    ``queue_name``: the Celery queue handler tasks go to (and the Redis key prefix root).
    ``retry_policy``: default *execution* retry policy of handlers run in this process (eager
    mode; a mapping of :class:`~ormevents.handlers.retry.RetryPolicy` fields); ``None`` keeps
    the library default. Celery workers never take a policy from a message: there the default is
    the worker's ``ORMEVENTS_RETRY_POLICY``, and a handler's own ``retry=`` always wins.
    ``publish_retry``: how sending to the broker is retried (a mapping of
    :class:`~ormevents.handlers.retry.PublishRetryPolicy` fields: ``max_retries``, ``interval_*``,
    ``timeout``); ``None`` keeps the default.
    ``failed_jobs``: retention of failed jobs (``{"max_count": 10000, "max_age_days": 30}``,
    see :class:`~ormevents.jobs.records.FailedJobRetention`); ``None`` keeps the default.
    ``status_ttl``: seconds the per-event delivery status is kept (default 7 days).
    Both travel with each event to the worker (data, not code).
    ``redis_check``: what ``init(redis_uri=...)`` does when Redis does not answer a PING at
    start-up: ``"error"`` (the default) raises :class:`~ormevents.errors.BrokerUnavailableError`;
    ``"warn"`` logs a warning and starts anyway (model writes go on, their events wait in the
    outbox until Redis is back; ``event_bus.publish`` fails); ``"skip"`` does not ask.
    ``max_event_bytes``: the largest event (as JSON) a write may produce, default 1 MiB; a
    larger one raises :class:`~ormevents.errors.EventTooLargeError` before anything is written.
    ``outbox``: the outbox's settings (:class:`OutboxConfig` fields), used when events go
    through a broker (``init(redis_uri=...)``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_name: str = Field(default="ormevents:events", min_length=1)
    retry_policy: dict[str, Any] | None = None
    publish_retry: dict[str, Any] | None = None
    failed_jobs: dict[str, Any] | None = None
    status_ttl: int = Field(default=7 * 24 * 3600, ge=1)
    redis_check: Literal["error", "warn", "skip"] = "error"
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    outbox: OutboxConfig = Field(default_factory=lambda: OutboxConfig())

    @field_validator("failed_jobs")
    @classmethod
    def _retention(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from .jobs.records import FailedJobRetention

            FailedJobRetention.model_validate(value)
        return value

    @field_validator("retry_policy", "publish_retry")
    @classmethod
    def _policy_fields(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if value is not None:
            from .handlers.retry import PublishRetryPolicy, RetryPolicy

            kind = RetryPolicy if info.field_name == "retry_policy" else PublishRetryPolicy
            kind.model_validate(value)  # reject unknown keys/bad values at init() time
        return value


def parse_event_config(value: EventConfig | dict[str, Any] | None) -> EventConfig:
    """``value`` as an :class:`EventConfig` (pydantic ``ValidationError`` on bad keys/values)."""
    if isinstance(value, EventConfig):
        return value
    return EventConfig.model_validate(value or {})
