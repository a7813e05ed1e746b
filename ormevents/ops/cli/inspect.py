"""``ormevents events status``, ``handlers list`` and ``stats``: reading what the queue holds.

Example::

    ormevents handlers list --import shop.handlers
    ormevents stats --json
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .plumbing import EXIT_NOT_FOUND, EXIT_USAGE, Connection, guarded, literal


@click.group()
def events() -> None:
    """Events: delivery status, a document's history, its state rebuilt from it."""


@events.command("status")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def event_status(conn: Connection, event_id: str, as_json: bool) -> None:
    """The event and each handler's state, attempts, last error and result."""
    from ...jobs.status import read_status

    status = read_status(conn.redis, conn.settings.keys, event_id)
    if status is None:
        click.echo(f"error: no status for event {event_id!r} in queue {conn.settings.queue_name!r} "
                   "(unknown, not dispatched yet, or expired)", err=True)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        click.echo(status.model_dump_json())
        return
    name = status.event.name if status.event else "?"
    due = f", due {status.due_at.isoformat(timespec='seconds')}" if status.due_at else ""
    click.echo(f"event {event_id} {name}: {status.state}{due}")
    table = Table("handler", "state", "attempts", "last error", "result", "updated")
    for handler in status.handlers.values():
        table.add_row(*map(literal, (handler.handler, handler.state, handler.attempts, handler.last_error or "",
                                     json.dumps(handler.result)[:60] if handler.result is not None else "",
                                     handler.updated_at.isoformat(timespec="seconds") if handler.updated_at else "")))
    if status.handlers:
        Console().print(table)


def import_modules(modules: tuple[str, ...]) -> list[str]:
    """Import ``modules`` (else ``ORMEVENTS_IMPORTS``) as ``celery -A`` would; an import error exits 2."""
    names = list(modules) or [m.strip() for m in os.environ.get("ORMEVENTS_IMPORTS", "").split(",") if m.strip()]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `celery -A` does: project modules import from here
    for module in names:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import-time error of user code: report it, don't trace back
            click.echo(f"error: cannot import {module!r}: {type(exc).__name__}: {exc}", err=True)
            sys.exit(EXIT_USAGE)
    return names


@click.group()
def handlers() -> None:
    """Registered handlers."""


@handlers.command("list")
@click.option("--import", "modules", multiple=True, help="module defining handlers (repeatable) [env ORMEVENTS_IMPORTS]")
@click.option("--json", "as_json", is_flag=True)
def list_handlers(modules: tuple[str, ...], as_json: bool) -> None:
    """Handlers registered by the imported modules: name, pattern, condition, retry policy, queue."""
    from ...handlers.registry import registry

    import_modules(modules)
    rows: list[dict[str, Any]] = []
    for name in registry.names():
        handler = registry.get(name)
        assert handler is not None
        rows.append({"name": name, "pattern": handler.pattern.text, "async": handler.is_async,
                     "condition": repr(handler.condition) if handler.condition else None,
                     "retry": handler.retry.to_config() if handler.retry else None, "queue": handler.queue})
    if as_json:
        click.echo(json.dumps(rows))
    else:
        table = Table("handler", "pattern", "kind", "condition", "retry policy", "queue", title="handlers")
        for row in rows:
            retry = row["retry"]
            policy = f"max_retries={retry['max_retries']} {retry['backoff']}" if retry else "(default)"
            table.add_row(*map(literal, (row["name"], row["pattern"], "async" if row["async"] else "sync",
                                         row["condition"] or "", policy, row["queue"] or "(event queue)")))
        Console().print(table)
    if not rows:
        click.echo("no handlers registered: pass --import or set ORMEVENTS_IMPORTS", err=True)
        sys.exit(EXIT_NOT_FOUND)


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def stats(conn: Connection, as_json: bool) -> None:
    """Queued, scheduled, running and failed counts per handler, and the queue's counters."""
    from ...jobs.status import read_gauges

    keys = conn.settings.keys
    pipe = conn.redis.pipeline(transaction=False)
    pipe.llen(conn.settings.queue_name)  # the Redis broker's list (0 on another broker)
    pipe.zcard(keys.schedule)
    pipe.zcard(keys.inflight)
    pipe.hgetall(keys.stats)
    broker, scheduled, inflight, counters = pipe.execute()
    per_handler: dict[str, dict[str, int]] = read_gauges(conn.redis, keys)
    for name, count in conn.store.handlers().items():
        per_handler.setdefault(name, {"queued": 0, "scheduled": 0, "running": 0})["failed"] = count
    for row in per_handler.values():
        row.setdefault("failed", 0)
    data: dict[str, Any] = {
        "queue": conn.settings.queue_name, "broker_messages": int(broker), "scheduled": int(scheduled) + int(inflight),
        "failed": conn.store.count(), "handlers": dict(sorted(per_handler.items())),
        "counters": {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in counters.items()},
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"queue {data['queue']}: {data['broker_messages']} message(s) in the broker, "
               f"{data['scheduled']} scheduled (delayed events and retries), {data['failed']} failed job(s)")
    table = Table("handler", "queued", "scheduled", "running", "failed", title="per handler")
    for name, row in data["handlers"].items():
        table.add_row(literal(name), *(str(row[k]) for k in ("queued", "scheduled", "running", "failed")))
    Console().print(table)
    if data["counters"]:
        click.echo("counters: " + ", ".join(f"{k}={v}" for k, v in sorted(data["counters"].items())))
