"""``ormevents worker``: run ``celery -A ormevents.worker worker`` for the configured queue.

Example::

    ormevents worker --import shop.handlers -- --concurrency 4
"""

from __future__ import annotations

import json
import os
import sys

import click

from ...urls import redact_url
from .plumbing import Connection, guarded


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--import", "modules", multiple=True, help="handler module (repeatable) [env ORMEVENTS_IMPORTS]")
@click.option("--print", "print_only", is_flag=True, help="print the command and environment instead of running it")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
@guarded
def worker(conn: Connection, modules: tuple[str, ...], print_only: bool, celery_args: tuple[str, ...]) -> None:
    """Run ``celery -A ormevents.worker worker`` for this queue (extra args go to celery).

    It consumes the event queue unless the extra args name queues (``-Q my_app:emails``).
    """
    env = {"ORMEVENTS_REDIS_URL": conn.settings.redis_url, "ORMEVENTS_QUEUE": conn.settings.queue_name}
    imports = ",".join(modules) or os.environ.get("ORMEVENTS_IMPORTS", "")
    if imports:
        env["ORMEVENTS_IMPORTS"] = imports
    if conn.settings.broker_url:
        env["ORMEVENTS_BROKER_URL"] = conn.settings.broker_url
    names_queues = any(arg in ("-Q", "--queues") or arg.startswith(("-Q", "--queues=")) for arg in celery_args)
    consume = [] if names_queues else ["-Q", conn.settings.queue_name]
    argv = [sys.executable, "-m", "celery", "-A", "ormevents.worker", "worker", *consume, *celery_args]
    if print_only:  # passwords in the URLs are never printed
        shown = {name: redact_url(value) if name.endswith("_URL") else value for name, value in env.items()}
        click.echo(json.dumps({"argv": argv, "env": shown}))
        return
    if not imports:
        click.echo("warning: no handler modules (--import / ORMEVENTS_IMPORTS): the worker will run nothing", err=True)
    os.execve(sys.executable, argv, {**os.environ, **env})
