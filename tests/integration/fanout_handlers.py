"""Handlers for the dispatch's inline runs (tests/integration/test_fanout.py), imported by its workers.

Each call is recorded like :mod:`tests.integration.delivery_handlers` does (``<queue>:rec:<handler>:<tag>``),
with ``outcome``: ``done`` or the exception that interrupted the handler.
"""

from __future__ import annotations

import time
from typing import Any

from ormevents import Event
from ormevents.handlers import event_handler
from ormevents.handlers.retry import RetryPolicy
from tests.integration.delivery_handlers import record

NO_RETRY = RetryPolicy(max_retries=0)


def _sleep_and_record(name: str, event: Event, seconds: float) -> None:
    started = time.time()
    try:
        time.sleep(seconds)
    except BaseException as exc:  # Celery's SoftTimeLimitExceeded: recorded, then it fails the attempt
        record(name, event, outcome=type(exc).__name__, started=started)
        raise
    record(name, event, outcome="done", started=started)


@event_handler("fan.order", name="fo.session", retry=NO_RETRY)
def takes_a_session(event: Event, session: Any) -> None:
    """Registered first and takes a session (so the dispatch begins ``fo.plain``'s run); runs > 1 s."""
    _sleep_and_record("fo.session", event, 1.5)


@event_handler("fan.order", name="fo.plain", retry=NO_RETRY)
def plain(event: Event) -> None:
    _sleep_and_record("fo.plain", event, 0)


@event_handler("fan.window", name="fw.a", retry=NO_RETRY)
def first_of_two(event: Event) -> None:
    """0.9 s: within a 1 s soft time limit, but it leaves the task no window for another handler."""
    _sleep_and_record("fw.a", event, 0.9)


@event_handler("fan.window", name="fw.b", retry=NO_RETRY)
def second_of_two(event: Event) -> None:
    _sleep_and_record("fw.b", event, 0.3)
