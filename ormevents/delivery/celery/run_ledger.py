"""Which deliveries of a ``run_handler`` message started, and whether one of them ended.

A message can be delivered more than once: its pool process died (``os._exit``, an OOM kill, a
segfault: Celery requeues it, ``task_reject_on_worker_lost``), the whole worker died (Redis
hands it out again after the ``visibility_timeout``), or an acknowledgement was lost. Celery
cannot tell how often (``delivery_info["redelivered"]`` is a flag, and only on some brokers), so
the worker counts in Redis. Each message carries a ``run_id`` (a random token made when it is
built; the Celery task id for older messages) and ``<queue>:runs:<event id>`` holds, per run id,
how many deliveries *started* the handler and whether an outcome (success, retry scheduled,
failed job) was *recorded*. :meth:`RunLedger.begin` decides, atomically, what a delivery does:

* ``"run"``: the first start: run the handler (the gauges move from queued/scheduled to running);
* ``"lost"``: an earlier delivery started and never recorded an outcome: its process died. The
  lost run counts as a failed attempt (:meth:`~ormevents.delivery.celery.outcomes.RunOutcomes.lost`);
  the handler is not run again by this delivery, so a handler that kills its process runs
  exactly as many times as its retry policy allows;
* ``"finished"`` / ``"done"``: an outcome was recorded already, or the handler completed the
  event through another message: nothing to do (counted as ``duplicates``).

:meth:`RunLedger.end` is queued on each outcome's pipeline; it moves the gauges and counts the
outcome only the first time (also per handler and per minute, :mod:`ormevents.jobs.activity`), so a
redelivered message never moves them twice. When Redis or the
broker fails under the bookkeeping, the worker requeues the message; :meth:`RunLedger.abandon`
first undoes the start, so that delivery runs the handler again. If Redis is still unreachable
then, the next delivery counts the run as lost: one attempt of the policy is used up (the event
is not dropped: at worst it becomes a failed job with reason ``worker_lost``, which can be retried).

Example::

    ledger = RunLedger(client, keys, ttl=7 * 24 * 3600)
    state, starts = ledger.begin(run_id, event_id, "billing.activate", "queued")
"""

from __future__ import annotations

import time
from typing import Any

import redis

from ...jobs.activity import ACTIVITY_TTL, minute_of
from ...jobs.keys import Keys

# KEYS: runs, done, gauges, stats; ARGV: run id, ttl, handler, the gauge the run leaves (queued|scheduled).
_BEGIN = """
if redis.call('HEXISTS', KEYS[1], ARGV[1] .. ':end') == 1 then
  redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
  return {'finished', 0}
end
local starts = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  local left = (starts > 1) and 'running' or ARGV[4]
  redis.call('HINCRBY', KEYS[3], left .. '|' .. ARGV[3], -1)
  redis.call('HSET', KEYS[1], ARGV[1] .. ':end', 1)
  redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
  return {'done', starts}
end
if starts > 1 then return {'lost', starts} end
redis.call('HINCRBY', KEYS[3], ARGV[4] .. '|' .. ARGV[3], -1)
redis.call('HINCRBY', KEYS[3], 'running|' .. ARGV[3], 1)
return {'run', starts}
"""

# KEYS: runs, gauges, stats, handler totals, this minute's activity (ormevents.jobs.activity);
# ARGV: run id, ttl, stats counter, handler, activity ttl, then gauge field / delta pairs.
_END = """
if redis.call('HSETNX', KEYS[1], ARGV[1] .. ':end', 1) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HINCRBY', KEYS[4], ARGV[3] .. '|' .. ARGV[4], 1)
redis.call('HINCRBY', KEYS[5], ARGV[3], 1)
redis.call('EXPIRE', KEYS[5], ARGV[5])
for i = 6, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS: runs, gauges; ARGV: run id, handler, the gauge the run left. Undoes a start whose outcome
# could not be recorded (Redis failed under it), so the requeued message runs again, not "lost".
_ABANDON = """
if redis.call('HEXISTS', KEYS[1], ARGV[1] .. ':end') == 1 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < 1 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
redis.call('HINCRBY', KEYS[2], 'running|' .. ARGV[2], -1)
redis.call('HINCRBY', KEYS[2], ARGV[3] .. '|' .. ARGV[2], 1)
return 1
"""


class RunLedger:
    """The deliveries of ``run_handler`` messages of one queue (see module doc)."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int) -> None:
        self.keys = keys
        self.ttl = ttl
        self._begin = client.register_script(_BEGIN)
        self._abandon = client.register_script(_ABANDON)

    def begin(self, run_id: str, event_id: str, handler: str, waiting: str) -> tuple[str, int]:
        """Count a delivery starting; returns ``(what to do, how many deliveries started)``.

        ``waiting`` is the gauge the run leaves when it starts: ``queued`` or ``scheduled``.
        """
        keys = [self.keys.runs(event_id), self.keys.done(event_id), self.keys.gauges, self.keys.stats]
        state, starts = self._begin(keys=keys, args=[run_id, self.ttl, handler, waiting])
        return (state.decode() if isinstance(state, bytes) else str(state)), int(starts)

    def end(self, pipe: Any, run_id: str, event_id: str, handler: str, stat: str, **gauges: int) -> None:
        """Queue on ``pipe``: the run recorded its outcome (``stat`` counted, ``gauges`` moved) once."""
        moves: list[str | int] = []
        for state, delta in gauges.items():
            moves += [f"{state}|{handler}", delta]
        # EVAL, not a registered script: on a pipeline redis-py would first ask SCRIPT EXISTS, one
        # more round trip per outcome (measured: +1 of the 2 per successful run)
        minute = self.keys.activity(minute_of(time.time()))
        pipe.eval(_END, 5, self.keys.runs(event_id), self.keys.gauges, self.keys.stats, self.keys.handler_totals,
                  minute, run_id, self.ttl, stat, handler, ACTIVITY_TTL, *moves)

    def abandon(self, run_id: str, event_id: str, handler: str, waiting: str) -> bool:
        """Undo this delivery's start (best effort, before the message is requeued because Redis
        or the broker failed under the bookkeeping): the next delivery runs the handler again
        instead of counting a lost run. ``False`` if an outcome was recorded after all."""
        return bool(self._abandon(keys=[self.keys.runs(event_id), self.keys.gauges], args=[run_id, handler, waiting]))
