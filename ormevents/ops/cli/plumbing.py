"""What every ``ormevents`` sub-command shares: the connection, exit codes, error handling.

Sub-commands import this module, never the root command (:mod:`ormevents.ops.cli`).
Exit codes: 0 ok, 1 not found / nothing matched, 2 usage error (bad date, bad filter),
3 cannot reach Redis or the broker (one line on stderr, never a traceback).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class Connection:
    """What the commands talk to, created lazily from the global options."""

    def __init__(self, redis_url: str, queue: str, broker_url: str | None) -> None:
        from ...delivery.celery.config import DeliverySettings

        self.settings = DeliverySettings(redis_url=redis_url, queue_name=queue, broker_url=broker_url)

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

    from ...delivery.celery.sending import _safe
    from ...errors import (
        BrokerUnavailableError,
        ConfigurationError,
        InvalidFilterError,
        JobNotFoundError,
    )

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except JobNotFoundError as exc:
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
