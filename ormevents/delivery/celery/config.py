"""Delivery settings shared by publishers and workers, and the Celery configuration they imply.

A worker reads them from the environment (:meth:`DeliverySettings.from_env`):

| variable                          | meaning                                                        |
|-----------------------------------|----------------------------------------------------------------|
| ``ORMEVENTS_REDIS_URL``           | Redis for the schedule, failed jobs and counters (required; ``redis://``, ``rediss://`` or ``unix://``, no Sentinel) |
| ``ORMEVENTS_BROKER_URL``          | Celery broker (``redis://``, ``rediss://`` or ``amqp://``); default: Redis |
| ``ORMEVENTS_QUEUE``               | queue name and Redis key prefix (default ``ormevents:events``) |
| ``ORMEVENTS_IMPORTS``             | comma-separated handler modules the worker imports             |
| ``ORMEVENTS_RETRY_POLICY``        | JSON of :class:`~ormevents.handlers.retry.RetryPolicy` fields (fallback default; events carry the publisher's default) |
| ``ORMEVENTS_PUBLISH_RETRY``       | JSON of :class:`~ormevents.handlers.retry.PublishRetryPolicy` fields    |
| ``ORMEVENTS_VISIBILITY_TIMEOUT``  | Redis broker ``visibility_timeout`` in seconds                 |
| ``ORMEVENTS_SCHEDULER_POLL``      | longest sleep of the schedule poller (default 0.05 s)          |
| ``ORMEVENTS_FAILED_JOBS``         | JSON of :class:`~ormevents.jobs.records.FailedJobRetention` fields (fallback; events carry the publisher's ``failed_jobs``) |
| ``ORMEVENTS_STATUS_TTL``          | seconds event status records are kept (default 7 days; events carry the publisher's ``status_ttl``) |
| ``ORMEVENTS_MONGO_URL``           | the models' MongoDB: with ``ORMEVENTS_DATABASE``, the worker runs the outbox relay, and the inbox of handlers that take a session (a replica set: transactions) |
| ``ORMEVENTS_DATABASE``            | the models' database (as given to ``init(database=...)``): the outbox records and ``_oe_inbox`` |
| ``ORMEVENTS_RUN_LEASE``           | seconds a handler run's lease lasts unless renewed (default 30) |
| ``ORMEVENTS_RELAY``               | ``off`` runs no relay in the worker (run ``ormevents relay`` instead); default on |
| ``ORMEVENTS_RELAY_GRACE``         | seconds a record stays pending before the relay publishes it (default 5) |
| ``ORMEVENTS_HISTORY_SECONDS``     | retention of sent events in ``_oe_events`` (default 7 days; ``0`` none; ``forever``) |

The queue name must be the same for the publisher (``event_config["queue_name"]``) and the
worker, since it names both the Celery queue and the Redis keys.

Example::

    >>> s = DeliverySettings(redis_url="redis://localhost:6379/0", queue_name="shop:events")
    >>> conf = s.celery_conf()
    >>> conf["task_default_queue"], conf["task_acks_late"], conf["accept_content"]
    ('shop:events', True, ['json'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigurationError
from ...handlers.retry import PublishRetryPolicy, RetryPolicy
from ...jobs.keys import Keys
from ...jobs.records import FailedJobRetention
from ...urls import redact_url

DEFAULT_QUEUE = "ormevents:events"


@dataclass(frozen=True)
class DeliverySettings:
    """Where events travel and how they are retried (see module doc)."""

    redis_url: str
    broker_url: str | None = None
    queue_name: str = DEFAULT_QUEUE
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    publish_retry: PublishRetryPolicy = field(default_factory=PublishRetryPolicy)
    visibility_timeout: float | None = None
    scheduler_poll: float = 0.05
    imports: tuple[str, ...] = ()
    result_ttl: int = 7 * 24 * 3600
    failed_jobs: FailedJobRetention = field(default_factory=FailedJobRetention)
    status_ttl: int = 7 * 24 * 3600
    mongo_url: str | None = None
    database: str | None = None
    run_lease: float = 30.0
    relay: bool = True
    relay_grace: float = 5.0
    history_seconds: float | None = 7 * 24 * 3600

    def __repr__(self) -> str:
        """The settings with the passwords of their URLs hidden (:func:`~ormevents.urls.redact_url`)."""
        shown = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("redis_url", "broker_url", "mongo_url"):
            if shown.get(name):
                shown[name] = redact_url(shown[name])
        return f"DeliverySettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def broker(self) -> str:
        """The broker URL (Redis when none is given)."""
        return self.broker_url or self.redis_url

    @property
    def broker_is_redis_url(self) -> bool:
        """True when the broker is ``redis_url``'s Redis: ormevents then pushes messages and
        restores unacknowledged ones itself, with Lua scripts on that Redis."""
        return self.broker_url in (None, self.redis_url) and self.redis_url.startswith(("redis://", "rediss://", "unix://"))

    @property
    def keys(self) -> Keys:
        """The Redis key names of this queue."""
        return Keys(self.queue_name)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliverySettings:
        """Settings from ``ORMEVENTS_*`` variables (see module doc)."""
        env = os.environ if env is None else env
        redis_url = env.get("ORMEVENTS_REDIS_URL")
        if not redis_url:
            raise ConfigurationError(
                "set ORMEVENTS_REDIS_URL (e.g. redis://localhost:6379/0): the worker keeps its "
                "schedule, failed jobs and counters in Redis"
            )
        check_urls(redis_url, env.get("ORMEVENTS_BROKER_URL") or None)
        visibility = env.get("ORMEVENTS_VISIBILITY_TIMEOUT")
        return cls(
            redis_url=redis_url,
            broker_url=env.get("ORMEVENTS_BROKER_URL") or None,
            queue_name=env.get("ORMEVENTS_QUEUE") or DEFAULT_QUEUE,
            retry_policy=RetryPolicy.model_validate(_json_env(env, "ORMEVENTS_RETRY_POLICY")),
            publish_retry=PublishRetryPolicy.model_validate(_json_env(env, "ORMEVENTS_PUBLISH_RETRY")),
            visibility_timeout=float(visibility) if visibility else None,
            scheduler_poll=float(env.get("ORMEVENTS_SCHEDULER_POLL") or 0.05),
            imports=tuple(m.strip() for m in (env.get("ORMEVENTS_IMPORTS") or "").split(",") if m.strip()),
            failed_jobs=FailedJobRetention.model_validate(_json_env(env, "ORMEVENTS_FAILED_JOBS")),
            status_ttl=int(env.get("ORMEVENTS_STATUS_TTL") or 7 * 24 * 3600),
            mongo_url=env.get("ORMEVENTS_MONGO_URL") or None,
            database=env.get("ORMEVENTS_DATABASE") or None,
            run_lease=_positive(env, "ORMEVENTS_RUN_LEASE", 30.0),
            relay=(env.get("ORMEVENTS_RELAY") or "on").strip().lower() not in ("off", "0", "false", "no"),
            relay_grace=_number(env, "ORMEVENTS_RELAY_GRACE", 5.0),
            history_seconds=_history(env.get("ORMEVENTS_HISTORY_SECONDS")),
        )

    def message_options(self) -> dict[str, Any]:
        """What every message carries besides the retry policy: retention and status TTL."""
        return {"failed_jobs": self.failed_jobs.model_dump(), "status_ttl": self.status_ttl}

    def options_from(self, carried: Any) -> tuple[FailedJobRetention, int]:
        """The retention and status TTL a message carried, else these settings' own."""
        retention, ttl = self.failed_jobs, self.status_ttl
        if isinstance(carried, dict):
            try:
                if carried.get("failed_jobs"):  # else this worker's own, as it is (no copy per run)
                    retention = FailedJobRetention.model_validate(carried["failed_jobs"])
                ttl = int(carried.get("status_ttl") or ttl)
            except (ValueError, TypeError):
                pass  # a malformed option keeps the worker's settings; the message still runs
        return retention, ttl

    def celery_conf(self) -> dict[str, Any]:
        """The Celery settings of an ormevents app (JSON only, late acks, prefetch 1)."""
        transport: dict[str, Any] = {}
        if self.broker.startswith(("redis://", "rediss://", "unix://")):
            timeout = self.publish_retry.timeout
            transport = {"socket_connect_timeout": timeout, "socket_timeout": max(timeout, 5.0)}
            if self.visibility_timeout is not None:
                transport["visibility_timeout"] = self.visibility_timeout
        conf: dict[str, Any] = {
            "broker_url": self.broker,
            "broker_connection_timeout": self.publish_retry.timeout,
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": transport,
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "task_ignore_result": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_default_queue": self.queue_name,
            "task_create_missing_queues": True,
            "enable_utc": True,
            "imports": self.imports,
        }
        if self.broker.startswith(("redis://", "rediss://", "unix://")):
            conf["broker_transport"] = "ormevents.delivery.celery.transport:Transport"
            if self.broker.startswith("rediss://"):
                conf["broker_use_ssl"] = broker_tls(self.broker)
        return conf


def publishing_app(settings: DeliverySettings, main: str = "ormevents") -> Any:
    """A Celery app configured for ``settings``, with no tasks (publishers send by task name)."""
    from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

    app = Celery(main, set_as_current=False)
    app.conf.update(settings.celery_conf())
    return app


def check_urls(redis_url: str, broker_url: str | None) -> None:
    """Raise :class:`~ormevents.errors.ConfigurationError` unless ``redis_url`` is a ``redis://``,
    ``rediss://`` or ``unix://`` URL (what ormevents' own Redis clients take) and ``broker_url``
    is not a Redis Sentinel one: Sentinel is not supported (kombu's Sentinel transport needs a
    ``master_name`` ormevents does not set, and the schedule, failed jobs and outbox marks take
    one server's URL).

    Example::

        >>> check_urls("rediss://cache:6380/0", "amqp://rabbit//")
    """
    for url, name in ((redis_url, "the Redis URL"), (broker_url, "the broker URL")):
        if url is not None and url.startswith("sentinel://"):
            raise ConfigurationError(f"{name} {redact_url(url)!r} is a Redis Sentinel URL, which ormevents does not "
                                     "support: give the current master's redis:// or rediss:// URL (or a proxy "
                                     "that follows failovers)")
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"the Redis URL {redact_url(redis_url)!r} must start with redis://, rediss:// "
                                 "(TLS) or unix://")


def broker_tls(url: str) -> dict[str, Any]:
    """The TLS options of a ``rediss://`` broker: none of its own (kombu reads the URL's
    ``ssl_*`` parameters, which win), else certificates verified, as redis-py does for the same
    URL (kombu alone would turn verification off; the hardened transport replaces kombu's
    ``rediss`` transport, so it must be said here).

    Example::

        >>> broker_tls("rediss://cache:6380/0?ssl_cert_reqs=none")
        {}
    """
    import ssl
    from urllib.parse import parse_qs, urlsplit

    if any(name.startswith("ssl_") for name in parse_qs(urlsplit(url).query)):
        return {}
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must be >= 0, got {raw!r}")
    return value


def _history(raw: str | None) -> float | None:
    if raw is not None and raw.strip().lower() in ("forever", "none"):
        return None
    return _number({"ORMEVENTS_HISTORY_SECONDS": raw or ""}, "ORMEVENTS_HISTORY_SECONDS", 7 * 24 * 3600)


def _json_env(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be a JSON object, got {raw!r}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value
