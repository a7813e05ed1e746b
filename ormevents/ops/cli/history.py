"""``ormevents events history`` and ``events rebuild``: a document's stored events from the command line.

* ``events history MODEL ID [--since] [--limit] [--json]``: the document's events in write order,
  each with its diff (a Rich table on a terminal, one JSON array with ``--json``);
* ``events rebuild MODEL ID [--at] [--json]``: its state folded from those events (up to ``--at``)
  and where it disagrees with the stored document (exit code 1 when it does).

``MODEL`` is the model's event name (``order``) or its collection (``orders``); ``ID`` is the
document id as text (a 24-hex ObjectId, an integer, or a string: tried in that order). Both need
the models' MongoDB (``--mongo-url``, ``--database``); nothing is imported from your code.

Example::

    ormevents events history order 6650f0c2a1b2c3d4e5f60718 --mongo-url mongodb://db:27017 --database shop
    ormevents events rebuild order 6650f0c2a1b2c3d4e5f60718 --at 2026-11-01T12:00 --json
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .outbox import DATABASE_OPTION, MONGO_OPTION, mongo_settings, unreachable
from .plumbing import EXIT_NOT_FOUND, Connection, guarded, literal


def id_candidates(text: str) -> list[Any]:
    """The values document id ``text`` may be stored as: an ObjectId, an integer, the text itself.

    Example::

        >>> id_candidates("42")
        [42, '42']
    """
    from bson import ObjectId

    found: list[Any] = []
    if ObjectId.is_valid(text):
        found.append(ObjectId(text))
    if text.lstrip("-").isdigit():
        found.append(int(text))
    return [*found, text]


async def _entries(settings: Any, model: str, text: str, since: Any, until: Any, limit: int | None,
                   with_stored: bool) -> tuple[str, Any, list[Any], dict[str, Any] | None]:
    from pymongo import AsyncMongoClient

    from ...delivery.outbox.history import (
        read_document,
        resolve_collection,
        sequence_range,
    )
    from ...delivery.outbox.records import HIDDEN_PROJECTION
    from ...errors import UnknownModelError

    low, high = sequence_range(since, until)
    client: Any = AsyncMongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=3000)
    try:
        database = client[settings.database]
        collection = await resolve_collection(database, model)
        if collection is None:
            raise UnknownModelError(f"no stored events of a model {model!r} in database {settings.database!r}: "
                                    "give the model's event name (order) or its collection (orders)")
        for key in id_candidates(text):
            entries = await read_document(database, collection, key, since=low, until=high, limit=limit)
            if entries:
                stored = None
                if with_stored:
                    stored = await database[collection].find_one({"_id": key}, {**HIDDEN_PROJECTION, "_id": 0})
                return collection, key, entries, stored
        return collection, text, [], None
    finally:
        await client.close()


def _load(conn: Connection, mongo_url: str, database: str, *args: Any) -> tuple[str, Any, list[Any], Any]:
    settings = mongo_settings(conn, mongo_url, database)
    try:
        return asyncio.run(_entries(settings, *args))
    except Exception as exc:
        from ...errors import OrmEventsError

        if isinstance(exc, OrmEventsError):
            raise
        unreachable(exc, settings)
        raise  # unreachable() exits


def _changes(changes: dict[str, tuple[Any, Any]], width: int = 60) -> str:
    text = ", ".join(f"{path}: {old!r} -> {new!r}" for path, (old, new) in changes.items())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("history")
@click.argument("model")
@click.argument("document_id")
@MONGO_OPTION
@DATABASE_OPTION
@click.option("--since", help="written at or after: ISO date/datetime or an age (30m, 2h, 7d)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="at most this many events")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def history(conn: Connection, model: str, document_id: str, mongo_url: str, database: str, since: str | None,
            limit: int | None, as_json: bool) -> None:
    """A document's stored events in write order, each with its diff."""
    from ...jobs.records import parse_since

    collection, _, entries, _ = _load(conn, mongo_url, database, model, document_id, parse_since(since), None,
                                      limit, False)
    if not entries:
        click.echo(f"error: no stored events for {collection} {document_id!r}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        click.echo(json.dumps([{"seq": e.seq, "written_at": e.written_at.isoformat(), "pending": e.pending,
                                **e.data} for e in entries]))
        return
    table = Table("#", "written at", "event", "changes", "state", title=f"{collection} {document_id}")
    for number, entry in enumerate(entries, 1):
        table.add_row(*map(literal, (number, entry.written_at.isoformat(timespec="milliseconds"), entry.name,
                                     _changes(entry.changes), "pending" if entry.pending else "sent")))
    Console().print(table)


@click.command("rebuild")
@click.argument("model")
@click.argument("document_id")
@MONGO_OPTION
@DATABASE_OPTION
@click.option("--at", "at", help="the state at this time (ISO date/datetime or an age); default: now")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def rebuild(conn: Connection, model: str, document_id: str, mongo_url: str, database: str, at: str | None,
            as_json: bool) -> None:
    """A document's state folded from its events, and where it disagrees with the stored one (exit 1)."""
    from ...jobs.records import parse_since
    from ...model.bson_form import from_bson
    from ...model.history import rebuilt

    collection, _, entries, stored = _load(conn, mongo_url, database, model, document_id, None, parse_since(at),
                                           None, True)
    if not entries:
        click.echo(f"error: no stored events for {collection} {document_id!r}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    result = rebuilt(entries, None if stored is None else from_bson(stored))
    if as_json:
        from ...events import codec

        click.echo(json.dumps({"events": result.events, "document": codec.encode(result.document),
                               "stored": codec.encode(result.stored), "redacted": list(result.redacted),
                               "disagreements": codec.encode({p: list(v) for p, v in result.disagreements.items()}),
                               "agrees": result.agrees}))
    else:
        click.echo(f"{collection} {document_id}: {result.events} events folded; "
                   + ("agrees with the stored document" if result.agrees else
                      f"{len(result.disagreements)} disagreement(s) with the stored document"))
        if result.redacted:
            click.echo(f"not compared (redacted in the history): {', '.join(result.redacted)}")
        if result.disagreements:
            table = Table("path", "rebuilt", "stored")
            for path, (ours, theirs) in result.disagreements.items():
                table.add_row(*map(literal, (path, repr(ours), repr(theirs))))
            Console().print(table)
    if not result.agrees:
        sys.exit(EXIT_NOT_FOUND)
