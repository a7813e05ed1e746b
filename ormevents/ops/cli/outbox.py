"""``ormevents outbox status`` and ``ormevents relay``: the outbox from the command line.

* ``outbox status [--json]``: pending events per collection, the oldest one's age, the relay's
  lag and lease holders (:mod:`ormevents.delivery.outbox.status`);
* ``relay [--once]``: run the outbox relay on its own (it runs inside workers by default), until
  SIGINT/SIGTERM, or for one pass with ``--once``.

Both need the models' MongoDB: ``--mongo-url``/``ORMEVENTS_MONGO_URL`` and
``--database``/``ORMEVENTS_DATABASE``. URLs are printed with their passwords hidden.

Example::

    ORMEVENTS_MONGO_URL=mongodb://db:27017 ormevents --queue shop:events outbox status --database shop --json
    ormevents relay --mongo-url mongodb://db:27017 --database shop
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .plumbing import EXIT_UNREACHABLE, EXIT_USAGE, Connection, check_url, literal

MONGO_OPTION = click.option("--mongo-url", envvar="ORMEVENTS_MONGO_URL", required=True,
                      help="MongoDB of the models [env ORMEVENTS_MONGO_URL]")
DATABASE_OPTION = click.option("--database", envvar="ORMEVENTS_DATABASE", required=True,
                         help="database of the models [env ORMEVENTS_DATABASE]")


def mongo_settings(conn: Connection, mongo_url: str, database: str, **more: Any) -> Any:
    """The delivery settings with the models' MongoDB (:class:`ConfigurationError` for a bad URL)."""
    check_url("--mongo-url", mongo_url)
    return dataclasses.replace(conn.settings, mongo_url=mongo_url, database=database, **more)


def unreachable(error: Exception, settings: Any) -> None:
    """Exit with the unreachable code and one line naming both servers (passwords hidden)."""
    from ...urls import redact_url

    click.echo(f"error: cannot reach MongoDB at {redact_url(settings.mongo_url)} or Redis at "
               f"{redact_url(settings.redis_url)}: {redact_url(str(error))[:300]}", err=True)
    sys.exit(EXIT_UNREACHABLE)


@click.group()
def outbox() -> None:
    """The transactional outbox: events recorded with writes, not yet on the broker."""


@outbox.command("status")
@MONGO_OPTION
@DATABASE_OPTION
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(conn: Connection, mongo_url: str, database: str, as_json: bool) -> None:
    """Pending events per collection, the oldest one's age, the relay's lag and lease holders."""
    from ...errors import ConfigurationError

    try:
        settings = mongo_settings(conn, mongo_url, database)
    except ConfigurationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        result = asyncio.run(_status(settings))
    except Exception as exc:  # a driver or Redis error: one line, never a traceback
        unreachable(exc, settings)
    if as_json:
        click.echo(json.dumps(result, default=str))
        return
    lag = result["relay"]["lag_seconds"]
    click.echo(f"{result['pending']} events pending; oldest {_age(result['oldest_age_seconds'])}; relay lag "
               f"{_age(lag) if lag is not None else 'unknown (no relay pass recorded)'}")
    table = Table("collection", "pending", "documents", "oldest", "relay holder", "last pass")
    for name, row in result["collections"].items():
        last = result["relay"]["passes"].get(name)
        table.add_row(*map(literal, (name, row["pending"], row["documents"], _age(row["oldest_age_seconds"]),
                                     result["relay"]["holders"].get(name) or "-",
                                     f"{last['published']} published" if last else "-")))
    Console().print(table)


async def _status(settings: Any) -> dict[str, Any]:
    import redis.asyncio
    from pymongo import AsyncMongoClient

    from ...delivery.outbox.status import outbox_status

    client: Any = AsyncMongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=3000)
    redis_client = redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
    try:
        return await outbox_status(client[settings.database], redis_client, settings.keys)
    finally:
        await redis_client.aclose()
        await client.close()


@click.command()
@MONGO_OPTION
@DATABASE_OPTION
@click.option("--grace", type=float, default=5.0, show_default=True,
              help="seconds a record stays pending before the relay publishes it")
@click.option("--once", is_flag=True, help="one pass over the outbox, then exit (prints how many were published)")
@click.pass_obj
def relay(conn: Connection, mongo_url: str, database: str, grace: float, once: bool) -> None:
    """Run the outbox relay (workers run one by default) until SIGINT/SIGTERM."""
    from ...errors import ConfigurationError

    try:
        settings = mongo_settings(conn, mongo_url, database, relay_grace=grace)
    except ConfigurationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        published = asyncio.run(_relay(settings, once))
    except Exception as exc:
        unreachable(exc, settings)
    click.echo(f"relay stopped; {published} events published")


async def _relay(settings: Any, once: bool) -> int:
    from ...delivery.celery.relay_runner import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    relay = await serve(settings, stop, once=once)
    return relay.published


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
