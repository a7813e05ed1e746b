"""``ormevents watch --model app.models:User``: follow the models' change streams and emit events for
writes made outside ormevents (see :func:`ormevents.watch`), until SIGINT/SIGTERM.

Needs the models' MongoDB (``--mongo-url``/``ORMEVENTS_MONGO_URL``, ``--database``/
``ORMEVENTS_DATABASE``) and the Redis of the queue (the global ``--redis-url``, ``--queue``):
events go to that queue, and watchers of one collection share a lease there, so run it on as many
nodes as you like. Exit codes: 0 stopped, 1 the resume token fell off the oplog (the error says
since when; ``--from-now`` starts again from the current time), 2 usage error (a ``--model``
that is not ``module:Class`` of an EventModel), 3 MongoDB or Redis unreachable.

Example::

    ormevents --queue shop:events watch --model shop.models:Order --model shop.models:User \\
        --mongo-url mongodb://db:27017 --database shop
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
from typing import Any

import click

from .plumbing import EXIT_UNREACHABLE, EXIT_USAGE, Connection, check_url


@click.command()
@click.option("--model", "models", multiple=True, required=True, metavar="MODULE:CLASS",
              help="an EventModel to watch, e.g. app.models:User (repeatable)")
@click.option("--mongo-url", envvar="ORMEVENTS_MONGO_URL", required=True,
              help="MongoDB of the models [env ORMEVENTS_MONGO_URL]")
@click.option("--database", envvar="ORMEVENTS_DATABASE", required=True,
              help="database of the models [env ORMEVENTS_DATABASE]")
@click.option("--from-now", is_flag=True, help="ignore the stored resume tokens: start from the current time")
@click.pass_obj
def watch(conn: Connection, models: tuple[str, ...], mongo_url: str, database: str, from_now: bool) -> None:
    """Emit events for writes made outside ormevents (change streams), until SIGINT/SIGTERM."""
    from ...errors import ChangeStreamHistoryLostError, ConfigurationError
    from ...urls import redact_url

    try:
        check_url("--mongo-url", mongo_url)
        settings = conn.settings
        classes = [_model(text) for text in models]
    except (ConfigurationError, click.BadParameter) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        asyncio.run(_watch(classes, mongo_url, database, settings, from_now))
    except ChangeStreamHistoryLostError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except _unreachable() as exc:
        click.echo(f"error: cannot reach MongoDB at {redact_url(mongo_url)} or Redis at "
                   f"{redact_url(settings.redis_url)}: {redact_url(str(exc))[:300]}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    click.echo("watcher stopped")


def _unreachable() -> tuple[type[BaseException], ...]:
    """The errors that mean MongoDB or Redis cannot be reached (exit 3); anything else is a bug or
    a refusal, raised with its traceback."""
    from pymongo.errors import ConnectionFailure
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from ...errors import BrokerUnavailableError, DatabaseUnavailableError

    return (ConnectionFailure, RedisConnectionError, RedisTimeoutError, BrokerUnavailableError,
            DatabaseUnavailableError, OSError)


def _model(text: str) -> Any:
    from ...model.base import EventModel

    module_name, _, name = text.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name) if name else None
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"--model {text}: cannot import it ({exc})") from None
    if not (isinstance(found, type) and issubclass(found, EventModel)):
        raise click.BadParameter(f"--model {text}: give module:Class of an EventModel, e.g. app.models:User")
    return found


async def _watch(classes: list[Any], mongo_url: str, database: str, settings: Any, from_now: bool) -> None:
    import ormevents

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    await ormevents.init(mongo_uri=mongo_url, database=database, redis_uri=settings.redis_url,
                         event_config={"queue_name": settings.queue_name})
    try:
        await asyncio.gather(*(ormevents.watch(model, redis_uri=settings.redis_url, stop=stop, from_now=from_now)
                               for model in classes))
    finally:
        await ormevents.close()
