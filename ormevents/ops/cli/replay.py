"""``ormevents replay``: re-deliver a model's stored events to ONE named handler, through the workers.

``replay --handler NAME --model M --since DATE [--until DATE] [--dry-run] [--rate 500/s] [--force]``
reads the events from the models' MongoDB (``--mongo-url``, ``--database``) and sends them to the
queue's workers for that handler only (:mod:`ormevents.delivery.celery.replay`), with a progress
bar on a terminal and a summary. Events the handler completed already are skipped unless
``--force``; ``--dry-run`` only counts. The handler must be imported by a running worker (workers
publish their handlers); with no worker running, pass ``--import`` to name it from here.

Exit codes: 0 done, 1 unknown handler or model, 2 bad date or rate, 3 MongoDB or Redis unreachable.

Example::

    ormevents --queue shop:events replay --handler audit.order --model order --since 2026-11-01 \\
        --mongo-url mongodb://db:27017 --database shop --rate 500/s
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import Any

import click

from .outbox import DATABASE_OPTION, MONGO_OPTION, mongo_settings, unreachable
from .plumbing import Connection, guarded


@click.command()
@click.option("--handler", required=True, help="the handler's registered name")
@click.option("--model", required=True, help="the model's event name (order) or its collection (orders)")
@click.option("--since", required=True, help="events written at or after: ISO date/datetime or an age (7d)")
@click.option("--until", help="events written at or before: ISO date/datetime or an age")
@click.option("--dry-run", is_flag=True, help="count what would be sent and skipped; send nothing")
@click.option("--rate", help="at most this many events per second (500/s, 30/m)")
@click.option("--force", is_flag=True, help="also events the handler completed already")
@click.option("--import", "modules", multiple=True, help="module defining the handler (when no worker runs)")
@MONGO_OPTION
@DATABASE_OPTION
@click.pass_obj
@guarded
def replay(conn: Connection, handler: str, model: str, since: str, until: str | None, dry_run: bool,
           rate: str | None, force: bool, modules: tuple[str, ...], mongo_url: str, database: str) -> None:
    """Re-deliver a model's stored events to one handler through the workers."""
    from ...delivery.celery.replay import parse_rate
    from ...jobs.records import parse_since
    from .inspect import import_modules

    settings = mongo_settings(conn, mongo_url, database)
    start, end, per_second = parse_since(since), parse_since(until), parse_rate(rate)
    if modules:
        import_modules(modules)
    try:
        summary = asyncio.run(_replay(conn, settings, handler, model, start, end, dry_run, per_second, force))
    except Exception as exc:
        from ...errors import OrmEventsError

        if isinstance(exc, OrmEventsError):
            raise
        unreachable(exc, settings)
        raise
    verb = ("would send", "would skip") if dry_run else ("sent", "skipped")
    click.echo(f"replay of {summary.collection} to {handler}: {summary.matched} events; {verb[0]} {summary.sent}, "
               f"{verb[1]} {summary.skipped} (already handled); {summary.seconds:.1f} s, "
               f"{summary.per_second:,.0f} events/s")


async def _replay(conn: Connection, settings: Any, handler: str, model: str, since: datetime | None,
                  until: datetime | None, dry_run: bool, rate: float | None, force: bool) -> Any:
    import ormevents
    from ormevents import event_bus

    from ...delivery.celery.replay import count_stored
    from ...delivery.outbox.history import resolve_collection

    await ormevents.init(mongo_uri=settings.mongo_url, database=settings.database, redis_uri=conn.redis_url,
                         broker_url=conn.broker_url, event_config={"queue_name": conn.queue})
    try:
        database = ormevents.get_runtime().database
        collection = await resolve_collection(database, model) or model
        total = await count_stored(database, collection, since, until)
        if not sys.stdout.isatty():
            return await event_bus.replay(handler=handler, model=model, since=since, until=until, dry_run=dry_run,
                                          rate=rate, force=force)
        from rich.progress import Progress

        with Progress() as bar:
            task = bar.add_task(f"{'counting' if dry_run else 'replaying'} to {handler}", total=total or None)
            return await event_bus.replay(handler=handler, model=model, since=since, until=until, dry_run=dry_run,
                                          rate=rate, force=force, progress=lambda done: bar.update(task, completed=done))
    finally:
        await ormevents.close()
