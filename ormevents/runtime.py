"""The one explicit state object (:class:`Runtime`) that ``init()`` creates.

Everything stateful (the database handle, the publisher, settings) lives here, reachable
through :func:`get_runtime`; :func:`close` releases it, so tests can start from scratch.

A MongoDB client ormevents creates itself (``init(mongo_uri=...)``) follows the process and
the event loop: PyMongo's ``AsyncMongoClient`` is bound to the loop it first ran on and must not
be used across ``fork()``, so when the runtime is used from another loop (``asyncio.run()``
again, pytest-asyncio's loop per test, a notebook) or in a forked child, it connects a new
client. The old one is closed on its own loop if that loop still runs in another thread, and
otherwise dropped without being awaited on the wrong loop; a forked child never touches its
parent's client. Clients and database objects you pass to ``init()`` are yours to manage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable
from typing import Any

from .config import EventConfig, parse_event_config
from .delivery.base import Outbox, Publisher
from .delivery.recording import RecordingPublisher
from .errors import ConfigurationError, NotInitializedError

RECORDING_LIMIT = 100_000
"""How many events the :class:`RecordingPublisher` of an ``init()`` without ``redis_uri=`` keeps."""

logger = logging.getLogger("ormevents.runtime")


class Runtime:
    """What ``init()`` set up: the database, where events go, and the settings.

    ``connect`` (for a client ormevents owns) makes a new ``(database, client)`` pair; the
    runtime calls it when used from another event loop or process (see module doc).
    """

    def __init__(self, database: Any, publisher: Publisher, event_config: EventConfig | None = None,
                 owned_client: Any | None = None, connect: Callable[[], tuple[Any, Any]] | None = None) -> None:
        self._database = database
        self.publisher = publisher
        self.event_config = event_config or EventConfig()
        self.owned_client = owned_client
        self._connect = connect
        self._home: tuple[int, weakref.ref[asyncio.AbstractEventLoop]] | None = None
        self.indexed: set[str] = set()
        """Collections whose outbox indexes this runtime has ensured (once each)."""

    @property
    def database(self) -> Any:
        """The async database (a fresh client's, if this loop or process is not the client's)."""
        if self._connect is not None:
            self._follow_loop()
        return self._database

    def collection(self, name: str) -> Any:
        """The async collection ``name`` (PyMongo async, Motor or mongomock-motor)."""
        return self.database[name]

    @property
    def outbox(self) -> Outbox | None:
        """The publisher's outbox (events recorded with the writes), or ``None`` for a publisher
        that takes each event through ``publish()`` (eager, recording, your own)."""
        outbox: Outbox | None = getattr(self.publisher, "outbox", None)
        return outbox

    def _follow_loop(self) -> None:
        loop = _running_loop()
        if loop is None:
            return
        if self._home is None:
            self._home = (os.getpid(), weakref.ref(loop))
            return
        if self._home[0] == os.getpid() and self._home[1]() is loop:
            return
        assert self._connect is not None
        old_client, old_home = self.owned_client, self._home
        self._database, self.owned_client = self._connect()
        self._home = (os.getpid(), weakref.ref(loop))
        logger.debug("new MongoDB client for %s (the previous one belongs to another event loop or process)",
                     "this process" if old_home[0] != os.getpid() else "this event loop")
        _abandon(old_client, old_home)

    async def release(self) -> None:
        """Close the client ormevents owns: awaited if it belongs to this loop, else abandoned."""
        client, self.owned_client = self.owned_client, None
        if client is None:
            return
        home = self._home
        if home is None or (home[0] == os.getpid() and home[1]() is _running_loop()):
            result = client.close()
            if hasattr(result, "__await__"):
                await result
        else:
            _abandon(client, home)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _abandon(client: Any, home: tuple[int, weakref.ref[asyncio.AbstractEventLoop]]) -> None:
    """Let go of an owned client that belongs to another loop or process, never awaiting it here."""
    if client is None or home[0] != os.getpid():
        return  # a forked child: the parent's sockets are shared, leave them to the parent
    loop = home[1]()
    if loop is not None and loop.is_running() and not loop.is_closed():
        asyncio.run_coroutine_threadsafe(client.close(), loop)  # its loop runs in another thread
    # else its loop is closed (or idle): nothing can run close() there, and it must not run here


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
    Calling ``init`` again replaces the previous runtime (closing what it owned), in any
    event loop: a client bound to an earlier, closed loop is dropped, not awaited. A client
    ormevents created follows new event loops and forked processes by itself (module doc).

    Example::

        await init(mongo_uri="mongodb://localhost:27017", database="app",
                   redis_uri="redis://localhost:6379/0", event_config={"queue_name": "app:events"})
    """
    config = parse_event_config(event_config)
    if sum((publisher is not None, redis_uri is not None or broker_url is not None, eager)) > 1:
        raise ConfigurationError("give only one of publisher=, redis_uri=/broker_url= and eager=True")
    if broker_url is not None and redis_uri is None:
        raise ConfigurationError("broker_url= needs redis_uri= too: the schedule and failed jobs live in Redis")
    if redis_uri is not None:
        from .delivery.celery.config import check_urls

        check_urls(redis_uri, broker_url)
    db, owned = _resolve_database(mongo_uri, database, client)
    connect = (lambda: _owned_client(mongo_uri, database)) if owned is not None and mongo_uri else None
    await close()
    if publisher is None and redis_uri is not None:
        publisher = _celery_publisher(config, redis_uri, broker_url)
        await _check_redis(publisher, config, redis_uri)
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
    runtime = Runtime(database=db, publisher=publisher, event_config=config, owned_client=owned, connect=connect)
    if runtime.outbox is not None:
        runtime.outbox.bind(lambda: runtime.database, config.outbox)
    _holder.current = runtime
    logger.debug("ormevents initialised on database %s", getattr(db, "name", db))
    return runtime


async def flush(*, cleanup: bool = False) -> None:
    """Wait until the events written so far on this event loop were handed to the broker
    (``cleanup=True``: and marked sent in MongoDB). A no-op without an outbox or before ``init()``.

    ``save()`` returns once its write (and the event recorded with it) is acknowledged; the
    hand-off to the broker follows at once, in the background. Await this before reading the
    broker queue in a test, or before a script exits (``close()`` does it too).
    """
    runtime = _holder.current
    if runtime is not None and runtime.outbox is not None:
        await runtime.outbox.flush(cleanup)


async def close() -> None:
    """Close what the current runtime owns and forget it (a no-op when not initialised).

    Waits for the hand-off of the events written on this loop first (:func:`flush`)."""
    runtime, _holder.current = _holder.current, None
    if runtime is None:
        return
    await runtime.publisher.close()
    await runtime.release()


async def _check_redis(publisher: Any, config: EventConfig, redis_uri: str) -> None:
    """Start-up check of ``init(redis_uri=...)`` (``event_config["redis_check"]``): Redis answers
    a PING within the publish timeout, asked off the event loop; else raise (closing the new
    publisher) or, with ``"warn"``, log and go on."""
    if config.redis_check == "skip":
        return
    from .errors import BrokerUnavailableError
    from .urls import redact_url

    limit = publisher.settings.publish_retry.timeout * 2 + 1
    try:
        await asyncio.wait_for(asyncio.to_thread(publisher.redis.ping), limit)
    except Exception as exc:  # redis errors, OSError, TimeoutError: all mean "not answering"
        reason = f"Redis at {redact_url(redis_uri)} does not answer ({type(exc).__name__}: {exc})"
        if config.redis_check == "warn":
            logger.warning("ormevents.init(): %s; starting anyway (redis_check='warn'): model writes keep their "
                           "events in the outbox until it answers, event_bus.publish fails", reason)
            return
        await publisher.close()
        raise BrokerUnavailableError(f"ormevents.init(): {reason}; start Redis or fix redis_uri=, or pass "
                                     "event_config={'redis_check': 'warn'} to start without it") from None


def _celery_publisher(config: EventConfig, redis_uri: str, broker_url: str | None) -> Publisher:
    from .delivery.celery.config import DeliverySettings
    from .delivery.celery.publisher import CeleryPublisher
    from .handlers.retry import PublishRetryPolicy, RetryPolicy
    from .jobs.records import FailedJobRetention

    if config.retry_policy:
        logger.warning("event_config['retry_policy'] is not sent to Celery workers (a message never sets how a "
                       "handler is retried): set ORMEVENTS_RETRY_POLICY on the workers, or retry= on the handlers")
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
        return _owned_client(mongo_uri, database)
    if mongo_uri is not None or client is not None:
        raise ConfigurationError("give database= as a name when passing mongo_uri= or client=, or pass only a database object")
    if not hasattr(database, "get_collection"):
        raise ConfigurationError(f"database= must be a name or an async database object, got {type(database).__name__}")
    return database, None


def _owned_client(mongo_uri: str, database: str) -> tuple[Any, Any]:
    from pymongo import AsyncMongoClient

    owned: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True, uuidRepresentation="standard")
    return owned[database], owned
