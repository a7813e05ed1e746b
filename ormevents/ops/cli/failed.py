"""``ormevents failed list|show|retry|remove`` (see :mod:`ormevents.ops.cli`).

``retry`` and ``remove`` change one JOB_ID, or ``--all`` jobs matching the filters. A bulk
change asks for confirmation when stdin is a terminal, unless ``--yes``; where no one can be
asked (a script, a pipe, cron) it needs ``--yes`` and exits 2 without it, so a script never
hangs on a prompt and never changes thousands of jobs by accident. On a terminal it shows a
progress bar (on stderr). ``--json`` prints ``{"action", "count", "dry_run"}`` (and ``job_id``
for one job).

Example::

    ormevents failed list --event order.shipped --limit 20
    ormevents failed retry --all --handler shop.notify_carrier --dry-run
    ormevents failed remove --all --model invoice --yes --json
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Column, Table

from ...jobs.records import FailedJob, FailedJobFilter
from ...jobs.records import parse_since as since_filter
from .plumbing import EXIT_NOT_FOUND, EXIT_USAGE, Connection, guarded, literal


def parse_since(value: str | None) -> datetime | None:
    """``2h``, ``30m``, ``7d``, ``45s`` ago, or an ISO date/datetime (naive = UTC); see
    :func:`ormevents.jobs.records.parse_since` (a bad value is a usage error).

    Example::

        >>> parse_since("2030-01-02").isoformat()
        '2030-01-02T00:00:00+00:00'
    """
    from ...errors import InvalidFilterError

    try:
        return since_filter(value)
    except InvalidFilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def filter_options(func: Any) -> Any:
    """The filter options every bulk command takes."""
    for option in reversed([
        click.option("--handler", help="handler name"),
        click.option("--event", "event_name", help="event name, e.g. order.shipped"),
        click.option("--model", help="model (first part of the event name)"),
        click.option("--exception", help="dotted exception type, e.g. builtins.ValueError"),
        click.option("--since", help="failed at or after: ISO date/datetime or an age (30m, 2h, 7d)"),
    ]):
        func = option(func)
    return func


def make_filter(handler: str | None, event_name: str | None, model: str | None, exception: str | None,
                since: str | None) -> FailedJobFilter:
    return FailedJobFilter(handler, event_name, model, exception, parse_since(since))


@click.group()
def failed() -> None:
    """Failed jobs: list, show, retry, remove."""


@failed.command("list")
@filter_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--cursor", default=None, help="next_cursor of a previous page")
@click.option("--json", "as_json", is_flag=True, help="print JSON (items, next_cursor)")
@click.pass_obj
@guarded
def list_jobs(conn: Connection, handler: str | None, event_name: str | None, model: str | None,
              exception: str | None, since: str | None, limit: int, cursor: str | None, as_json: bool) -> None:
    """List failed jobs, newest first (exit 1 when none match)."""
    page = conn.store.page(make_filter(handler, event_name, model, exception, since), limit=limit, cursor=cursor)
    if as_json:
        click.echo(json.dumps({"items": [job.model_dump(mode="json") for job in page.items],
                               "next_cursor": page.next_cursor}))
    elif page.items:
        table = Table("handler", "event", "error", "attempts", "failed at", title="failed jobs")
        table.columns.insert(0, Column("job id", no_wrap=True))  # ids are copied into other commands
        for job in page.items:
            table.add_row(*map(literal, (job.id, job.handler, job.event_name,
                                         f"{job.error_type}: {job.error_message}"[:80], job.attempts,
                                         job.failed_at.isoformat(timespec="seconds"))))
        Console().print(table)
        if page.next_cursor:
            click.echo(f"more: --cursor {page.next_cursor}")
    else:
        click.echo("no failed jobs match")
    if not page.items:
        sys.exit(EXIT_NOT_FOUND)


@failed.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@guarded
def show(conn: Connection, job_id: str, as_json: bool) -> None:
    """Show one failed job with its event and traceback."""
    job = _get(conn, job_id)
    if as_json:
        click.echo(job.model_dump_json())
        return
    console = Console()
    for label, value in [("job", job.id), ("handler", job.handler), ("event", f"{job.event_name} {job.event_id}"),
                         ("error", f"{job.error_type}: {job.error_message}"), ("reason", job.reason),
                         ("attempts", job.attempts), ("first failed", job.first_failed_at),
                         ("last failed", job.failed_at), ("worker", job.worker),
                         ("queue", job.handler_queue or "(event queue)")]:
        console.print(f"[bold]{label:>13}[/bold]  ", literal(value), sep="", highlight=False)
    if job.raw_message is not None:
        console.print("[bold]      message[/bold]  ", literal(job.raw_message), sep="", highlight=False)
    else:
        console.print("[bold]        event[/bold]  ", literal(json.dumps(job.event, indent=2)), sep="", highlight=False)
    console.print(literal(job.traceback or "(no traceback)"), highlight=False)


def _bulk_command(verb: str, summary: str) -> None:
    @failed.command(verb, help=summary)
    @click.argument("job_id", required=False)
    @click.option("--all", "all_", is_flag=True, help="every job matching the filters")
    @filter_options
    @click.option("--dry-run", is_flag=True, help=f"only say how many would be {verb}d".replace("retryd", "retried"))
    @click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation (needed with --all off a terminal)")
    @click.option("--json", "as_json", is_flag=True, help='print {"action", "count", "dry_run"} as JSON')
    @click.pass_obj
    @guarded
    def command(conn: Connection, job_id: str | None, all_: bool, dry_run: bool, yes: bool, as_json: bool,
                **filters: Any) -> None:
        _bulk(conn, verb, job_id, all_, dry_run, yes, as_json, filters)


_bulk_command("retry", "Re-enqueue JOB_ID, or --all matching jobs (attempts start again from 0).")
_bulk_command("remove", "Delete JOB_ID, or --all matching jobs.")


def _bulk(conn: Connection, verb: str, job_id: str | None, all_: bool, dry_run: bool, yes: bool, as_json: bool,
          filters: dict[str, Any]) -> None:
    if bool(job_id) == all_:
        raise click.UsageError(f"give a JOB_ID or --all (with filters), not {'both' if all_ else 'neither'}")
    if job_id and any(v is not None for v in filters.values()):
        raise click.UsageError("filters apply to --all only")
    if job_id:
        if dry_run:
            _get(conn, job_id)
        else:
            (conn.requeue.retry if verb == "retry" else conn.requeue.remove)(job_id)
        _report(verb, 1, dry_run, as_json, job_id)
        return
    chosen = make_filter(**filters)
    count = conn.store.count(chosen)
    if count and not dry_run and not yes:
        _confirm(verb, count, filters)
    if not dry_run:
        count = _walk(conn, verb, chosen, count, show_progress=not as_json)
    _report(verb, count, dry_run, as_json)
    if count == 0:
        sys.exit(EXIT_NOT_FOUND)


def _report(verb: str, count: int, dry_run: bool, as_json: bool, job_id: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps({"action": verb, **({"job_id": job_id} if job_id else {}), "count": count,
                               "dry_run": dry_run}))
    elif job_id:
        click.echo(f"would {verb} 1 job" if dry_run else f"{'retried' if verb == 'retry' else 'removed'} {job_id}")
    else:
        click.echo(f"would {verb} {count} job(s)" if dry_run else f"{'retried' if verb == 'retry' else 'removed'} "
                   f"{count} job(s)")


def _confirm(verb: str, count: int, filters: dict[str, Any]) -> None:
    """Ask on a terminal; elsewhere (a script) refuse without ``--yes`` instead of waiting for an answer."""
    names = {"event_name": "event"}
    scope = " ".join(f"{names.get(k, k)}={v}" for k, v in filters.items() if v is not None) or "any filter (all jobs)"
    if not sys.stdin.isatty():
        click.echo(f"error: {verb} --all would change {count} failed job(s) matching {scope}; stdin is not a "
                   "terminal, so pass --yes to confirm (or --dry-run to only count)", err=True)
        sys.exit(EXIT_USAGE)
    if not click.confirm(f"{verb.capitalize()} {count} failed job(s) matching {scope}?", default=False):
        click.echo("nothing changed")
        sys.exit(EXIT_NOT_FOUND)


def _walk(conn: Connection, verb: str, filters: FailedJobFilter, expected: int, show_progress: bool) -> int:
    """Retry or remove every match, page by page; a progress bar on a terminal (stderr)."""
    pages = conn.requeue.each_page(verb, filters)
    console = Console(stderr=True)
    if not (show_progress and console.is_terminal):
        return sum(pages)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    total = 0
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("retrying" if verb == "retry" else "removing", total=expected)
        for done in pages:
            total += done
            progress.update(task, completed=total)
    return total


def _get(conn: Connection, job_id: str) -> FailedJob:
    from ...errors import JobNotFoundError

    job: FailedJob | None = conn.store.get(job_id)
    if job is None:
        raise JobNotFoundError(f"no failed job {job_id!r} in queue {conn.settings.queue_name!r}")
    return job
