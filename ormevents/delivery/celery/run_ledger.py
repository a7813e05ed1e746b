"""Which deliveries of a ``run_handler`` message started, which run holds the lease, what completed.

A message can be delivered more than once: its pool process died (``os._exit``, an OOM kill, a
segfault: Celery requeues it, ``task_reject_on_worker_lost``), the whole worker died (Redis
hands it out again after the ``visibility_timeout``), an acknowledgement was lost, a handler
outlived the ``visibility_timeout`` (kombu hands the message out again while it runs), or the
event itself was published twice (a relay re-publish). Celery cannot tell these apart
(``delivery_info["redelivered"]`` is a flag, and only on some brokers), so the worker keeps
count in Redis, one Lua script per state change (:mod:`ormevents.delivery.celery.ledger_scripts`):

* :meth:`RunLedger.dispatch` — the fan-out of one event: the handlers that have not completed
  it (nor recorded an outcome for this dispatch's run: a retry scheduled, a failed job, a parked
  condition error). Each gets a run message whose id is deterministic (:func:`dispatch_run_id`), so a
  duplicate or redelivered dispatch sends a copy of the same message, which the checks below
  skip: **a duplicate event never produces a duplicate run**.
* :meth:`RunLedger.begin` — a delivery wants to run the handler (for the run a dispatch makes
  itself, in the dispatch's round trip: :meth:`RunLedger.dispatch_and_begin`). Atomically: ``"finished"``
  (this message recorded an outcome already), ``"done"`` (the handler completed this event,
  through any message), ``"busy"`` (another run holds the *lease* of this (event, handler)),
  ``"lost"`` (an earlier delivery of this message started and no longer runs: its process
  died; counted as a failed attempt) or ``"run"`` (the lease is taken, the status is
  ``running``, the gauges move). The lease is a Redis key holding the run's token, renewed
  while the handler runs (:mod:`ormevents.delivery.celery.leases`); a process that dies stops
  renewing it, and a worker on the same host takes over at once when it sees that the holder's
  process is gone (``takeover``).
* :meth:`RunLedger.complete` — the handler succeeded: result, status, chained events, gauges,
  counters and the release of the lease, in one script, unless the handler completed the event
  already. Its verdict says whether the run still held its lease (``ok``), had lost it without
  anyone taking it (``ok-late``), or was *fenced*: another run took the lease (``fenced``) or
  completed first (``already``), so the effect may have happened twice.
* :meth:`RunLedger.end` (queued on the pipeline of a retry or a failed job) and
  :meth:`RunLedger.abandon` (Redis or the broker failed under the bookkeeping: undo the start so
  the requeued message runs again).

A run costs two round trips (``begin`` and ``complete``); a lease is renewed only for runs
longer than a third of it. Within :meth:`RunLedger.completions_deferred` (a dispatch task's
inline runs, the events of a batch), a success's ``complete`` waits for the ledger's next
``dispatch``/``dispatch_and_begin``/``begin`` and travels in its round trip (one pipeline, the
two scripts in order), so a run there costs one round trip of its own. The wait is only Python
code, never a handler: every run begins with one of those calls, and the block's end sends what
is left (:mod:`ormevents.delivery.celery.deferred`). If that round trip fails, the waiting
run is abandoned (as when ``complete`` fails alone: its next delivery runs it again) and the
error is raised. Gauges and counters move once per message, however often it is delivered, and
the outcomes are counted per handler and per minute too (:mod:`ormevents.jobs.activity`).

Example::

    ledger = RunLedger(client, keys, ttl=7 * 24 * 3600)
    begun = ledger.begin(run_id, event_id, "billing.activate", "queued", token, status_ttl=3600,
                         status={"h|billing.activate|state": '"running"'})
    if begun.state == "run":
        verdict, holder = ledger.complete(run_id, event_id, "billing.activate", token, "null", 3600, {}, [])
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import redis

from ...jobs.activity import minute_of
from ...jobs.keys import Keys
from ...jobs.replies import reply_text
from . import ledger_scripts as lua
from .deferred import DeferredCompletions


def dispatch_run_id(handler: str) -> str:
    """The run id of the first run of ``handler`` that a dispatch sends (the same for every
    copy of the event, so duplicates of it are one message to the ledger)."""
    return f"{handler}@0"


@dataclass(frozen=True)
class Begin:
    """What :meth:`RunLedger.begin` decided (see module doc)."""

    state: str
    starts: int
    holder: str = ""
    """The lease holder's token: for ``busy``, the run in progress; for ``run``/``lost``, a
    holder this delivery took over from (``""`` if none)."""
    pttl_ms: int = 0
    """For ``busy``: milliseconds until the holder's lease expires unless renewed."""


def _begun(reply: list[Any]) -> Begin:
    state, starts, holder, pttl = reply
    return Begin(reply_text(state), int(starts), reply_text(holder), int(pttl))


def _pairs(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class RunLedger:
    """The deliveries, leases and completions of one queue's handler runs (see module doc)."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int, lease: float = 30.0) -> None:
        self.keys = keys
        self.ttl = ttl
        self.lease_ms = max(1, int(lease * 1000))
        self._dispatch = client.register_script(lua.DISPATCH)
        self._dispatch_begin = client.register_script(lua.DISPATCH_BEGIN)
        self._begin = client.register_script(lua.BEGIN)
        self._complete = client.register_script(lua.COMPLETE)
        self._abandon = client.register_script(lua.ABANDON)
        self._renew = client.register_script(lua.RENEW)
        self._deferred = DeferredCompletions(client, self._complete)

    def completions_deferred(self) -> AbstractContextManager[None]:
        """Let successes' ``complete`` travel with the next round trip inside the block (nests;
        per thread); the outermost block's end records what still waits (see module doc and
        :mod:`ormevents.delivery.celery.deferred`)."""
        return self._deferred.block()

    @property
    def deferring(self) -> bool:
        """True inside :meth:`completions_deferred` (in this thread)."""
        return self._deferred.active

    def dispatch(self, wire_json: str, event_id: str, queued: dict[str, dict[str, str]], status_ttl: int,
                 pipe: Any = None, run_id: Callable[[str], str] = dispatch_run_id) -> list[str]:
        """Record a dispatch of the event to the handlers of ``queued`` (name -> the status fields
        of its queued state); returns those that have not completed the event and whose run of
        this dispatch has not recorded an outcome, in order.

        ``run_id`` names each handler's run (a replay passes its own); with ``pipe`` the script is
        queued on that pipeline instead, and its ``execute()`` returns the names."""
        keys, args = self._dispatch_call(wire_json, event_id, queued, status_ttl, run_id)
        if pipe is not None:
            self._dispatch(keys=keys, args=args, client=pipe)
            return []
        return [reply_text(name) for name in self._deferred.run_with(self._dispatch, keys, args)]

    def dispatch_and_begin(self, wire_json: str, event_id: str, queued: dict[str, dict[str, str]], status_ttl: int,
                           handler: str, token: str, status: dict[str, str]) -> tuple[list[str], Begin | None]:
        """:meth:`dispatch`, then :meth:`begin` of the first run of ``handler`` (one of ``queued``:
        the run the dispatch makes itself), in one round trip. The :class:`Begin` is ``None`` when
        ``handler`` had completed the event (it is not among the names returned)."""
        keys, args = self._dispatch_call(wire_json, event_id, queued, status_ttl, dispatch_run_id)
        begin_keys, begin_args = self._begin_call(dispatch_run_id(handler), event_id, handler, "queued", token,
                                                  status_ttl, status, "")
        names, begun = self._deferred.run_with(self._dispatch_begin, [*keys, begin_keys[2]],
                                               [len(args), *args, *begin_args])
        return [reply_text(name) for name in names], (_begun(begun) if begun else None)

    def _dispatch_call(self, wire_json: str, event_id: str, queued: dict[str, dict[str, str]],
                       status_ttl: int, run_id: Callable[[str], str]) -> tuple[list[str], list[Any]]:
        args: list[Any] = [status_ttl, self.ttl, wire_json, json.dumps("dispatched")]
        for name, fields in queued.items():
            args += [name, run_id(name), len(fields), *_pairs(fields)]
        keys = [self.keys.status(event_id), self.keys.gauges, self.keys.stats, self.keys.done(event_id),
                self.keys.runs(event_id), self._this_minute()]
        return keys, args

    def begin(self, run_id: str, event_id: str, handler: str, waiting: str, token: str, status_ttl: int,
              status: dict[str, str], takeover: str = "") -> Begin:
        """Decide what this delivery does and, for ``run``, take the lease for ``token`` and write
        ``status`` (see module doc). ``waiting`` is the gauge the run leaves: ``queued`` or
        ``scheduled``; ``takeover`` is the token of a holder known to be dead."""
        keys, args = self._begin_call(run_id, event_id, handler, waiting, token, status_ttl, status, takeover)
        return _begun(self._deferred.run_with(self._begin, keys, args))

    def _begin_call(self, run_id: str, event_id: str, handler: str, waiting: str, token: str, status_ttl: int,
                    status: dict[str, str], takeover: str) -> tuple[list[str], list[Any]]:
        keys = [self.keys.runs(event_id), self.keys.done(event_id), self.keys.lease(event_id, handler),
                self.keys.status(event_id), self.keys.gauges, self.keys.stats]
        args: list[Any] = [run_id, self.ttl, handler, waiting, token, self.lease_ms, takeover, status_ttl, *_pairs(status)]
        return keys, args

    def complete(self, run_id: str, event_id: str, handler: str, token: str, result_json: str, status_ttl: int,
                 status: dict[str, str], children: list[tuple[str, str, float]]) -> tuple[str, str]:
        """Record a success (see module doc): ``children`` are (schedule member, message JSON,
        due) of the chained events. Returns ``(verdict, holder)``."""
        keys, args = self._complete_call(run_id, event_id, handler, token, result_json, status_ttl, status, children)
        verdict, holder = self._complete(keys=keys, args=args)
        return reply_text(verdict), reply_text(holder)

    def complete_later(self, run_id: str, event_id: str, handler: str, token: str, result_json: str,
                       status_ttl: int, status: dict[str, str], children: list[tuple[str, str, float]],
                       report: Callable[[str, str], None], undo: Callable[[], None]) -> None:
        """:meth:`complete`, in the next round trip when :attr:`deferring` (else now); ``report``
        gets ``(verdict, holder)`` once it is recorded, ``undo`` runs if that round trip fails."""
        if not self.deferring:
            report(*self.complete(run_id, event_id, handler, token, result_json, status_ttl, status, children))
            return
        keys, args = self._complete_call(run_id, event_id, handler, token, result_json, status_ttl, status, children)
        self._deferred.wait(keys, args, report, undo)

    def _complete_call(self, run_id: str, event_id: str, handler: str, token: str, result_json: str,
                       status_ttl: int, status: dict[str, str],
                       children: list[tuple[str, str, float]]) -> tuple[list[str], list[Any]]:
        keys = [self.keys.runs(event_id), self.keys.done(event_id), self.keys.lease(event_id, handler),
                self.keys.status(event_id), self.keys.gauges, self.keys.stats, self.keys.schedule,
                self.keys.payloads, self.keys.handler_totals, self._this_minute()]
        args: list[Any] = [run_id, self.ttl, handler, token, result_json, status_ttl, len(status), *_pairs(status)]
        for member, payload, due in children:
            args += [member, payload, repr(due)]
        return keys, args

    def end(self, pipe: Any, run_id: str, event_id: str, handler: str, stat: str, token: str = "",
            **gauges: int) -> None:
        """Queue on ``pipe``: the run recorded its outcome (``stat`` counted, ``gauges`` moved) once,
        and released its lease (if ``token`` still holds it)."""
        moves: list[str | int] = []
        for state, delta in gauges.items():
            moves += [f"{state}|{handler}", delta]
        # EVAL, not a registered script: on a pipeline redis-py would first ask SCRIPT EXISTS, one
        # more round trip per outcome (measured: +1 of the 2 per successful run)
        pipe.eval(lua.END, 6, self.keys.runs(event_id), self.keys.gauges, self.keys.stats,
                  self.keys.lease(event_id, handler), self.keys.handler_totals, self._this_minute(),
                  run_id, self.ttl, stat, token, handler, *moves)

    def _this_minute(self) -> str:
        """The activity key of the current minute (:mod:`ormevents.jobs.activity`)."""
        return self.keys.activity(minute_of(time.time()))

    def abandon(self, run_id: str, event_id: str, handler: str, waiting: str, token: str = "") -> bool:
        """Undo this delivery's start and release its lease (best effort, before the message is
        requeued because Redis or the broker failed under the bookkeeping): the next delivery runs
        the handler again instead of counting a lost run. ``False`` if an outcome was recorded."""
        keys = [self.keys.runs(event_id), self.keys.gauges, self.keys.lease(event_id, handler)]
        return bool(self._abandon(keys=keys, args=[run_id, handler, waiting, token]))

    def renew(self, leases: list[tuple[str, str]]) -> list[bool]:
        """Extend each (lease key, token) still held by its token; ``False`` where it was lost."""
        if not leases:
            return []
        found = self._renew(keys=[key for key, _ in leases], args=[self.lease_ms, *(token for _, token in leases)])
        return [bool(int(flag)) for flag in found]
