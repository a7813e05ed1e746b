"""The ``ormevents`` command line: failed jobs, event status, handlers, stats, a worker, the outbox
(``outbox status``), its relay (``relay``), the change-stream watcher (``watch``), a document's
event history (``events history``, ``events rebuild``) and its replay to one handler (``replay``).

Built on click and rich, both dependencies of ormevents (a plain ``pip install ormevents``
gives the command; ``web`` needs the ``web`` extra). Connection: ``--redis-url`` or
``ORMEVENTS_REDIS_URL``; queue: ``--queue`` or ``ORMEVENTS_QUEUE``; broker (for retries):
``--broker-url`` or ``ORMEVENTS_BROKER_URL`` (default: the Redis URL).

Exit codes: 0 ok, 1 not found / nothing matched / already retried / not retryable / declined,
2 usage error (bad date, bad filter, malformed URL, a bulk change without ``--yes`` where no one
can be asked), 3 cannot reach Redis or the broker (one line on stderr, never a traceback).

Imported only by the ``ormevents`` script (and ``python -m ormevents``); sub-commands share
:mod:`.plumbing`, never this module.

Example::

    ormevents failed list --handler billing.activate --since 2h --json
    ormevents failed retry --all --exception builtins.TimeoutError --dry-run
    ormevents events status 0b6f6c1e-...
    ormevents events history order 6650f0c2a1b2c3d4e5f60718 --mongo-url mongodb://db:27017 --database shop
    ormevents replay --handler audit.order --model order --since 7d --dry-run --mongo-url ... --database shop
    ormevents outbox status --mongo-url mongodb://db:27017 --database shop --json
"""

from __future__ import annotations

import sys
from typing import Any

from .plumbing import EXIT_USAGE, Connection


def build() -> Any:
    """The click group (imports click and rich; see :func:`main`)."""
    import click

    from ...delivery.celery.config import DEFAULT_QUEUE
    from .failed import failed
    from .history import history, rebuild
    from .inspect import events, handlers, stats
    from .outbox import outbox, relay
    from .replay import replay
    from .watch import watch
    from .web import web
    from .worker import worker

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--redis-url", envvar="ORMEVENTS_REDIS_URL", default="redis://localhost:6379/0", show_default=True,
                  help="Redis with the schedule, failed jobs and status [env ORMEVENTS_REDIS_URL]")
    @click.option("--queue", envvar="ORMEVENTS_QUEUE", default=DEFAULT_QUEUE, show_default=True,
                  help="queue name and Redis key prefix [env ORMEVENTS_QUEUE]")
    @click.option("--broker-url", envvar="ORMEVENTS_BROKER_URL", default=None,
                  help="broker for retries (default: the Redis URL) [env ORMEVENTS_BROKER_URL]")
    @click.pass_context
    def cli(ctx: click.Context, redis_url: str, queue: str, broker_url: str | None) -> None:
        """Inspect and operate ormevents: failed jobs, event status, handlers, stats, workers, the outbox."""
        ctx.obj = Connection(redis_url, queue, broker_url)

    for command in (failed, events, handlers, stats, worker, web, outbox, relay, watch, replay):
        cli.add_command(command)
    for command in (history, rebuild):
        events.add_command(command)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ormevents`` script."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(f"ormevents: the command line needs click and rich, dependencies of ormevents "
                         f"({exc.name} is missing: a broken install?): pip install --force-reinstall ormevents\n")
        sys.exit(EXIT_USAGE)
    build()(args=argv, prog_name="ormevents")
