"""The ``ormevents`` command line: failed jobs, event status, handlers, stats, a worker.

Built on click and rich (``pip install 'ormevents[cli]'``). Connection: ``--redis-url`` or
``ORMEVENTS_REDIS_URL``; queue: ``--queue`` or ``ORMEVENTS_QUEUE``; broker (for retries):
``--broker-url`` or ``ORMEVENTS_BROKER_URL`` (default: the Redis URL).

Exit codes: 0 ok, 1 not found / nothing matched / already retried / not retryable / declined,
2 usage error (bad date, bad filter, malformed URL, a bulk change without ``--yes`` where no one
can be asked), 3 cannot reach Redis or the broker (one line on stderr, never a traceback).

Data is printed as it is: text from failed jobs, events and handler names that looks like Rich
markup (``[bold]``, ``[/]``) is never interpreted (:func:`literal`).

Example::

    ormevents failed list --handler billing.activate --since 2h --json
    ormevents failed retry --all --exception builtins.TimeoutError --dry-run
    ormevents events status 0b6f6c1e-...
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
    if ``url`` cannot be a ``--redis-url`` (``redis://``, ``rediss://``, ``unix://``) or a
    ``--broker-url`` (a kombu transport, e.g. ``redis://``, ``amqp://``). Nothing is imported
    or connected to.

    Example::

        >>> check_url("--redis-url", "redis://localhost:6379/0")
    """
    from .errors import ConfigurationError

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        if option == "--redis-url":
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
        from .celery.sending import _safe

        raise ConfigurationError(f"{option} {_safe(url)!r} is not a valid URL: {exc}") from None


def literal(value: Any) -> Any:
    """``value`` as Rich text that is printed as it is (markup in data is never interpreted)."""
    from rich.text import Text

    return Text("" if value is None else str(value))


class Connection:
    """What the commands talk to, created lazily from the global options."""

    def __init__(self, redis_url: str, queue: str, broker_url: str | None) -> None:
        from .celery.config import DeliverySettings

        check_url("--redis-url", redis_url)
        if broker_url:
            check_url("--broker-url", broker_url)
        self.settings = DeliverySettings(redis_url=redis_url, queue_name=queue, broker_url=broker_url)

    @cached_property
    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2, socket_timeout=5)

    @cached_property
    def store(self) -> Any:
        from .failed_store import FailedJobStore

        return FailedJobStore(self.redis, self.settings.queue_name)

    @cached_property
    def requeue(self) -> Any:
        from .celery.app import create_app
        from .celery.requeue import Requeue
        from .celery.scheduler import RedisSchedule
        from .celery.sending import Sender

        sender = Sender(create_app(self.settings, main="ormevents-cli"), RedisSchedule(self.redis, self.settings.keys),
                        self.settings)
        return Requeue(self.store, sender, status_ttl=self.settings.status_ttl)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ormevents/Redis errors into the documented exit codes and one-line messages."""
    import functools

    import click
    import redis

    from .celery.sending import _safe
    from .errors import (BrokerUnavailableError, ConfigurationError, InvalidFilterError, JobNotFoundError,
                         JobNotRetryableError)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (JobNotFoundError, JobNotRetryableError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NOT_FOUND)
        except (InvalidFilterError, ConfigurationError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            conn = click.get_current_context().obj
            url = _safe(conn.settings.redis_url) if hasattr(conn, "settings") else "the configured URL"
            click.echo(f"error: cannot reach Redis at {url}: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except BrokerUnavailableError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)

    return wrapper


def build() -> Any:
    """The click group (imports click and rich; see :func:`main`)."""
    import click

    from .celery.config import DEFAULT_QUEUE
    from .cli_failed import failed
    from .cli_ops import events, handlers, stats, worker

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--redis-url", envvar="ORMEVENTS_REDIS_URL", default="redis://localhost:6379/0", show_default=True,
                  help="Redis with the schedule, failed jobs and status [env ORMEVENTS_REDIS_URL]")
    @click.option("--queue", envvar="ORMEVENTS_QUEUE", default=DEFAULT_QUEUE, show_default=True,
                  help="queue name and Redis key prefix [env ORMEVENTS_QUEUE]")
    @click.option("--broker-url", envvar="ORMEVENTS_BROKER_URL", default=None,
                  help="broker for retries (default: the Redis URL) [env ORMEVENTS_BROKER_URL]")
    @click.pass_context
    def cli(ctx: click.Context, redis_url: str, queue: str, broker_url: str | None) -> None:
        """Inspect and operate ormevents: failed jobs, event status, handlers, stats, workers."""
        from .errors import ConfigurationError

        try:
            ctx.obj = Connection(redis_url, queue, broker_url)
        except ConfigurationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)

    for command in (failed, events, handlers, stats, worker):
        cli.add_command(command)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ormevents`` script."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(f"ormevents: the command line needs click and rich ({exc.name} is missing): "
                         "pip install 'ormevents[cli]'\n")
        sys.exit(EXIT_USAGE)
    build()(args=argv, prog_name="ormevents")


if __name__ == "__main__":
    from ormevents.cli import main as _main  # one module object, so click finds our Connection

    _main()
