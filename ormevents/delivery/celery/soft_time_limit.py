"""Celery's soft time limit interrupts a handler, never the bookkeeping around it.

With ``task_soft_time_limit``, billiard makes the pool process raise ``SoftTimeLimitExceeded``
from a ``SIGUSR1`` handler, wherever the task's thread is at that moment. Inside the handler
that is the point: the overrun becomes a failed attempt. Inside ormevents' own work around it
(counting the delivery, recording the result, scheduling the retry, storing the failed job,
sending the fan-out), the exception would abort that work half-way; the task then ends with an
error, Celery acknowledges the message, and the run's result, its retry or its failed job is
gone. :class:`SoftTimeLimitGuard` holds the signal back for the whole task and lets it through
only while the handler itself runs (:meth:`SoftTimeLimitGuard.interruptible`). A limit that
expires during the bookkeeping is noted, logged, and the outcome is kept; one that expired
before the handler started stops it before it runs (a failed attempt, as usual).

Only billiard's own handler is replaced, only in the main thread of a pool process (where
billiard delivers it); elsewhere (threads pool, solo pool, no limit configured) the guard does
nothing.

Celery counts the limit from the task's start, once per task: a dispatch that runs several
handlers inline (:mod:`ormevents.delivery.celery.fanout`) asks :meth:`SoftTimeLimitGuard.leaves`
before each whether the limit (``limit``, see :func:`soft_limit_of`) still leaves a window, and
whether it fired already (then no later handler of the task has a soft limit at all).

Example::

    with SoftTimeLimitGuard() as guard:
        begin()                         # never interrupted
        with guard.interruptible():
            result = handler(event)     # SoftTimeLimitExceeded may end this
        record(result)                  # never interrupted
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

logger = logging.getLogger("ormevents.delivery.celery.worker")

SIGNAL = getattr(signal, "SIGUSR1", None)


def _billiard_handler() -> Any:
    try:
        from billiard.pool import soft_timeout_sighandler  # type: ignore[import-untyped]  # billiard ships no type hints
    except ImportError:  # pragma: no cover - billiard comes with celery
        return None
    return soft_timeout_sighandler


class SoftTimeLimitGuard:
    """Defers Celery's soft time limit outside :meth:`interruptible` blocks (see module doc)."""

    def __init__(self, limit: float | None = None) -> None:
        self.limit = limit
        """The task's soft time limit in seconds (``None``: none known), counted from now."""
        self.arrived = False
        self.fired = False
        """The limit went off during this task (in the handler or held back)."""
        self._started = time.monotonic()
        self._deferring = True
        self._previous: Any = None

    def __enter__(self) -> SoftTimeLimitGuard:
        billiard = _billiard_handler()
        if (SIGNAL is not None and billiard is not None and threading.current_thread() is threading.main_thread()
                and signal.getsignal(SIGNAL) is billiard):
            self._previous = signal.signal(SIGNAL, self._on_signal)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(SIGNAL, self._previous)  # type: ignore[arg-type]  # SIGNAL is set when _previous is
            self._previous = None
        if self.arrived:
            logger.warning("Celery's soft time limit expired while ormevents recorded the run's outcome; "
                           "the outcome was kept")

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Let the soft time limit through inside the block (the handler runs here)."""
        if self.arrived and self._previous is not None:
            self.arrived = False
            self._previous(SIGNAL, None)  # the limit passed before the handler started: stop it now
        self._deferring = False
        try:
            yield
        finally:
            self._deferring = True

    def leaves(self, seconds: float) -> bool:
        """Whether a handler starting now has ``seconds`` of the task's soft time limit left: the
        limit has not fired and, if one is known, more than ``seconds`` of it remain."""
        if self.fired:
            return False
        return self.limit is None or time.monotonic() - self._started + seconds < self.limit

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.fired = True
        if self._deferring:
            self.arrived = True
            return
        self._previous(signum, frame)  # billiard's handler: raises SoftTimeLimitExceeded


def soft_limit_of(task: Any) -> float | None:
    """The soft time limit Celery's pool applies to the running ``task`` (a bound Celery task):
    the message's own (``timelimit`` header), else the task's ``soft_time_limit`` (Celery fills it
    from ``task_soft_time_limit``); ``None`` if neither is set."""
    timelimit = getattr(task.request, "timelimit", None) or (None, None)
    limit = timelimit[1] or task.soft_time_limit or task.app.conf.task_soft_time_limit
    return float(limit) if limit else None
