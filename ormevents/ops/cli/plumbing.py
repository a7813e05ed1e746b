"""What every ``ormevents`` sub-command shares: the connection, exit codes, error handling.

Sub-commands import this module, never the root command (:mod:`ormevents.ops.cli`).
Exit codes: 0 ok, 1 not found / nothing matched / already retried / not retryable / declined,
2 usage error (bad date, bad filter, malformed URL, a bulk change without ``--yes`` where no one
can be asked), 3 cannot reach Redis or the broker (one line on stderr, never a traceback).

Data is printed as it is: text from failed jobs, events and handler names that looks like Rich
markup (``[bold]``, ``[/]``) is never interpreted (:func:`literal`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def check_url(option: str, url: str) -> None:
    """Raise :class:`~ormevents.errors.ConfigurationError` (one line: what is wrong, what to use)
    if ``url`` cannot be a ``--redis-url`` (``redis://``, ``rediss://``, ``unix://``), a
    ``--mongo-url`` (``mongodb://``, ``mongodb+srv://``) or a ``--broker-url`` (a kombu
    transport, e.g. ``redis://``, ``amqp://``). Nothing is imported
    or connected to.

    Example::

        >>> check_url("--redis-url", "redis://localhost:6379/0")
    """
    from ...errors import ConfigurationError

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        if option == "--mongo-url":
            if parts.scheme not in ("mongodb", "mongodb+srv"):
                raise ValueError("use mongodb://host:port or mongodb+srv://...")
        elif option == "--redis-url":
            if parts.scheme not in ("redis", "rediss", "unix"):
                raise ValueError("use redis://host:port/db, rediss://... or unix:///path.sock")
            database = parts.path.strip("/") if parts.scheme != "unix" else ""
            if database and not database.isdigit():
                raise ValueError(f"the database {database!r} is not a number (redis://host:port/0)")
            import redis.connection

            redis.connection.parse_url(url)
        else:
            from kombu.transport import TRANSPORT_ALIASES

            if parts.scheme not in TRANSPORT_ALIASES:
                raise ValueError(f"unknown broker transport {parts.scheme!r}: use redis://... or amqp://...")
    except ValueError as exc:
        from ...urls import redact_url

        raise ConfigurationError(f"{option} {redact_url(url)!r} is not a valid URL: {exc}") from None


def literal(value: Any) -> Any:
    """``value`` as Rich text that is printed as it is (markup in data is never interpreted)."""
    from rich.text import Text

    return Text("" if value is None else str(value))


class Connection:
    """What the commands talk to, created lazily from the global options: the URLs are checked
    when a command first needs them (:class:`~ormevents.errors.ConfigurationError`), so a
    command that never talks to Redis is not refused for a bad ``ORMEVENTS_REDIS_URL``."""

    def __init__(self, redis_url: str, queue: str, broker_url: str | None) -> None:
        self.redis_url, self.queue, self.broker_url = redis_url, queue, broker_url

    @cached_property
    def settings(self) -> Any:
        from ...delivery.celery.config import DeliverySettings

        check_url("--redis-url", self.redis_url)
        if self.broker_url:
            check_url("--broker-url", self.broker_url)
        return DeliverySettings(redis_url=self.redis_url, queue_name=self.queue, broker_url=self.broker_url)

    @cached_property
    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2, socket_timeout=5)

    @cached_property
    def store(self) -> Any:
        from ...jobs.redis_store import FailedJobStore

        return FailedJobStore(self.redis, self.settings.queue_name)

    @cached_property
    def requeue(self) -> Any:
        from ...delivery.celery.app import create_app
        from ...delivery.celery.requeue import Requeue
        from ...delivery.celery.scheduler import RedisSchedule
        from ...delivery.celery.sending import Sender

        sender = Sender(create_app(self.settings, main="ormevents-cli"), RedisSchedule(self.redis, self.settings.keys),
                        self.settings)
        return Requeue(self.store, sender, status_ttl=self.settings.status_ttl)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ormevents/Redis errors into the documented exit codes and one-line messages."""
    import functools

    import click
    import redis

    from ...errors import (
        BrokerUnavailableError,
        ConfigurationError,
        InvalidFilterError,
        JobNotFoundError,
        JobNotRetryableError,
        UnknownHandlerError,
        UnknownModelError,
    )
    from ...urls import redact_url

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (JobNotFoundError, JobNotRetryableError, UnknownModelError, UnknownHandlerError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NOT_FOUND)
        except (InvalidFilterError, ConfigurationError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            click.echo(f"error: cannot reach Redis at {_redis_url()}: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except redis.RedisError as exc:  # WRONGTYPE, a script refused by an ACL, ...: still one line
            click.echo(f"error: Redis at {_redis_url()} refused the command: {type(exc).__name__}: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except BrokerUnavailableError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)

    def _redis_url() -> str:
        conn = click.get_current_context().obj
        return redact_url(conn.redis_url) if isinstance(conn, Connection) else "the configured URL"

    return wrapper
