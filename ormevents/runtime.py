"""The one explicit state object (:class:`Runtime`) that ``init()`` creates.

Everything stateful (the database handle, the publisher, settings) lives here, reachable
through :func:`get_runtime`; :func:`close` releases it, so tests can start from scratch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .config import EventConfig, parse_event_config
from .delivery.base import Publisher
from .delivery.recording import RecordingPublisher
from .errors import ConfigurationError, NotInitializedError

RECORDING_LIMIT = 100_000
"""How many events the :class:`RecordingPublisher` of an ``init()`` without ``redis_uri=`` keeps."""

logger = logging.getLogger("ormevents.runtime")


@dataclass
class Runtime:
    """What ``init()`` set up: the database, where events go, and the settings."""

    database: Any
    publisher: Publisher
    event_config: EventConfig = field(default_factory=EventConfig)
    owned_client: Any | None = None

    def collection(self, name: str) -> Any:
        """The async collection ``name`` (PyMongo async, Motor or mongomock-motor)."""
        return self.database[name]


class _Holder:
    current: Runtime | None = None


_holder = _Holder()


def get_runtime() -> Runtime:
    """The runtime set up by ``init()``; raises :class:`NotInitializedError` before it."""
    runtime = _holder.current
    if runtime is None:
        raise NotInitializedError(
            "ormevents is not initialised: call `await ormevents.init(mongo_uri=..., database=...)` first"
        )
    return runtime


async def init(
    *,
    mongo_uri: str | None = None,
    database: Any = None,
    client: Any = None,
    publisher: Publisher | None = None,
    event_config: EventConfig | dict[str, Any] | None = None,
    redis_uri: str | None = None,
    broker_url: str | None = None,
    eager: bool = False,
) -> Runtime:
    """Connect the model layer to MongoDB and choose where events go.

    * ``mongo_uri`` + ``database`` (a name): ormevents creates (and later closes) a PyMongo
      ``AsyncMongoClient``;
    * ``client`` + ``database`` (a name): use your client (PyMongo async or Motor);
    * ``database`` (a database object): use it as is (PyMongo async, Motor, mongomock-motor).

    Events go to ``publisher`` if given; else, with ``redis_uri`` (Redis for the schedule and
    failed jobs; also the broker unless ``broker_url`` names another, e.g. ``amqp://``), to a
    :class:`~ormevents.delivery.celery.publisher.CeleryPublisher` for ``event_config["queue_name"]``; else they are
    kept by a :class:`RecordingPublisher`. ``eager=True`` runs handlers in-process right after
    each write instead (an :class:`~ormevents.delivery.eager.EagerPublisher`, for your unit tests).
    Calling ``init`` again replaces the previous runtime (closing what it owned).

    Example::

        await init(mongo_uri="mongodb://localhost:27017", database="app",
                   redis_uri="redis://localhost:6379/0", event_config={"queue_name": "app:events"})
    """
    config = parse_event_config(event_config)
    if sum((publisher is not None, redis_uri is not None or broker_url is not None, eager)) > 1:
        raise ConfigurationError("give only one of publisher=, redis_uri=/broker_url= and eager=True")
    if broker_url is not None and redis_uri is None:
        raise ConfigurationError("broker_url= needs redis_uri= too: the schedule and failed jobs live in Redis")
    db, owned = _resolve_database(mongo_uri, database, client)
    await close()
    if publisher is None and redis_uri is not None:
        publisher = _celery_publisher(config, redis_uri, broker_url)
    if eager:
        from .delivery.eager import EagerPublisher
        from .handlers.retry import RetryPolicy
        from .jobs.records import FailedJobRetention

        publisher = EagerPublisher(retry_policy=RetryPolicy.model_validate(config.retry_policy or {}),
                                   failed_jobs=FailedJobRetention.model_validate(config.failed_jobs or {}))
    if publisher is None:
        logger.warning("ormevents.init() without redis_uri=: events are only recorded in memory (the last %d), "
                       "never delivered; pass redis_uri= to deliver them, or eager=True in tests", RECORDING_LIMIT)
        publisher = RecordingPublisher(limit=RECORDING_LIMIT)
    runtime = Runtime(database=db, publisher=publisher, event_config=config, owned_client=owned)
    _holder.current = runtime
    logger.debug("ormevents initialised on database %s", getattr(db, "name", db))
    return runtime


async def close() -> None:
    """Close what the current runtime owns and forget it (a no-op when not initialised)."""
    runtime, _holder.current = _holder.current, None
    if runtime is None:
        return
    await runtime.publisher.close()
    if runtime.owned_client is not None:
        result = runtime.owned_client.close()
        if hasattr(result, "__await__"):
            await result


def _celery_publisher(config: EventConfig, redis_uri: str, broker_url: str | None) -> Publisher:
    from .delivery.celery.config import DeliverySettings
    from .delivery.celery.publisher import CeleryPublisher
    from .handlers.retry import PublishRetryPolicy, RetryPolicy
    from .jobs.records import FailedJobRetention

    settings = DeliverySettings(
        redis_url=redis_uri,
        broker_url=broker_url,
        queue_name=config.queue_name,
        retry_policy=RetryPolicy.model_validate(config.retry_policy or {}),
        publish_retry=PublishRetryPolicy.model_validate(config.publish_retry or {}),
        failed_jobs=FailedJobRetention.model_validate(config.failed_jobs or {}),
        status_ttl=config.status_ttl,
    )
    return CeleryPublisher(settings)


def _resolve_database(mongo_uri: str | None, database: Any, client: Any) -> tuple[Any, Any | None]:
    if database is None:
        raise ConfigurationError("init() needs database=: a database name (with mongo_uri= or client=) or a database object")
    if isinstance(database, str):
        if client is not None:
            return client[database], None
        if mongo_uri is None:
            raise ConfigurationError(f"init(database={database!r}) needs mongo_uri= or client= to connect with")
        from pymongo import AsyncMongoClient

        owned: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True, uuidRepresentation="standard")
        return owned[database], owned
    if mongo_uri is not None or client is not None:
        raise ConfigurationError("give database= as a name when passing mongo_uri= or client=, or pass only a database object")
    if not hasattr(database, "get_collection"):
        raise ConfigurationError(f"database= must be a name or an async database object, got {type(database).__name__}")
    return database, None
