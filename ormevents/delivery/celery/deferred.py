"""Successes' COMPLETE scripts riding in the next round trip of the run ledger.

Inside a dispatch or batch task (:meth:`~ormevents.delivery.celery.run_ledger.RunLedger.completions_deferred`),
a run that succeeded does not spend a Redis round trip of its own on its COMPLETE script: the
script waits here and goes in ONE pipeline with the ledger's next script (the next run's BEGIN,
or the next event's DISPATCH), in that order. The block's end records what still waits, before
the task returns (and Celery acknowledges its message).

* **Only Python code waits.** Every run begins with one of those scripts, so a completion is
  recorded before the next handler starts; at most one waits at a time.
* **Per thread.** A threads pool runs several tasks on one ledger: each thread has its own
  waiting completion and block depth.
* **Failures.** If the round trip that carries it fails, the waiting run is abandoned (``undo``:
  its next delivery runs it again, as when COMPLETE fails alone) and the error is raised. A
  server that lost its scripts (``NOSCRIPT``) gets them loaded and the script run again.

Example::

    deferred = DeferredCompletions(client, complete_script)
    with deferred.block():
        deferred.wait(keys, args, report=lambda verdict, holder: ..., undo=lambda: ...)
        names = deferred.run_with(dispatch_script, keys2, args2)   # both in one round trip
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import NoScriptError

from ...jobs.replies import reply_text


@dataclass
class _Waiting:
    """A success's COMPLETE waiting for the next round trip."""

    keys: list[str]
    args: list[Any]
    report: Callable[[str, str], None]
    """Called with ``(verdict, holder)`` once it is recorded."""
    undo: Callable[[], None]
    """Called if the round trip fails (abandons the run, best effort)."""


class _PerThread(threading.local):
    depth = 0
    waiting: _Waiting | None = None


class DeferredCompletions:
    """The waiting COMPLETE of each thread of one ledger (see module doc); ``complete`` is the
    ledger's registered COMPLETE script."""

    def __init__(self, client: redis.Redis, complete: Any) -> None:
        self._client, self._complete = client, complete
        self._local = _PerThread()

    @contextmanager
    def block(self) -> Iterator[None]:
        """Completions may wait inside the block (nests); the outermost end records the last."""
        self._local.depth += 1
        try:
            yield
        finally:
            self._local.depth -= 1
            if not self._local.depth:
                self.flush()

    @property
    def active(self) -> bool:
        """True inside :meth:`block` (in this thread)."""
        return self._local.depth > 0

    def wait(self, keys: list[str], args: list[Any], report: Callable[[str, str], None],
             undo: Callable[[], None]) -> None:
        """Keep this COMPLETE for the next round trip (recording the one already waiting first)."""
        self.flush()
        self._local.waiting = _Waiting(keys, args, report, undo)

    def flush(self) -> None:
        """Record the waiting COMPLETE now, if any."""
        waiting, self._local.waiting = self._local.waiting, None
        if waiting is None:
            return
        try:
            verdict, holder = self._complete(keys=waiting.keys, args=waiting.args)
        except redis.RedisError:
            waiting.undo()
            raise
        waiting.report(reply_text(verdict), reply_text(holder))

    def run_with(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` in the round trip of the waiting COMPLETE (if any): both in one
        pipeline, in order. Returns ``script``'s reply."""
        waiting, self._local.waiting = self._local.waiting, None
        if waiting is None:
            return script(keys=keys, args=args)
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._complete.sha, len(waiting.keys), *waiting.keys, *waiting.args)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            completed, reply = pipe.execute(raise_on_error=False)
            if isinstance(completed, NoScriptError):  # the server lost its scripts: load and run again
                completed = self._complete(keys=waiting.keys, args=waiting.args)
            if isinstance(completed, Exception):
                raise completed
        except redis.RedisError:
            waiting.undo()
            raise
        waiting.report(reply_text(completed[0]), reply_text(completed[1]))
        if isinstance(reply, NoScriptError):
            return script(keys=keys, args=args)
        if isinstance(reply, Exception):
            raise reply
        return reply
