"""The Redis schedule of delayed events and retries, and the thread that sends them when due.

Layout (under the queue name, see :mod:`ormevents.jobs.keys`): a ZSET ``member -> due``
and a HASH ``member -> message``. Members are ``event:<id>`` (a delayed event) or
``run:<event id>:<handler>:<attempt>`` (a retry), so adding the same member twice is one entry.

Moving a due entry is atomic (one Lua script): the script takes up to ``limit`` members due
at ``now`` out of the schedule and into an *in-flight* ZSET scored ``now + lease``, in the
same step, so concurrent pollers (one per worker) never take the same entry. The poller
sends the message to the broker and then deletes the entry; if it dies in between, the lease
expires and a poller takes the entry again (at-least-once, never lost). :meth:`cancel` only
removes entries still in the schedule, so ``True`` means the message will not be sent and
``False`` that it was sent, is being sent, or never existed. Nothing is held in worker
memory: a million pending entries cost Redis memory only.

Example::

    schedule = RedisSchedule(redis.Redis.from_url(url), Keys("shop:events"))
    schedule.add("event:42", {"task": "...", "args": []}, due=time.time() + 60)
    schedule.cancel("event:42")     # True: it was pending
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from ...jobs.keys import Keys

logger = logging.getLogger("ormevents.delivery.celery.scheduler")

# KEYS: schedule, in-flight, payloads; ARGV: now, lease end, limit.
# Expired leases first (a poller died while sending), then due entries.
_CLAIM = """
local out = {}
local limit = tonumber(ARGV[3])
for _, source in ipairs({KEYS[2], KEYS[1]}) do
  if limit > 0 then
    local due = redis.call('ZRANGEBYSCORE', source, '-inf', ARGV[1], 'LIMIT', 0, limit)
    for _, member in ipairs(due) do
      redis.call('ZREM', source, member)
      local payload = redis.call('HGET', KEYS[3], member)
      if payload then
        redis.call('ZADD', KEYS[2], ARGV[2], member)
        table.insert(out, member)
        table.insert(out, payload)
        limit = limit - 1
      end
    end
  end
end
return out
"""

# KEYS: schedule, payloads; ARGV: member. Only a still-scheduled entry can be cancelled.
_CANCEL = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return removed
"""


class RedisSchedule:
    """Delayed messages in Redis (see module doc). Thread-safe; sync redis-py client."""

    def __init__(self, client: redis.Redis, keys: Keys, lease: float = 30.0) -> None:
        self.client = client
        self.keys = keys
        self.lease = lease
        self._claim = client.register_script(_CLAIM)
        self._cancel = client.register_script(_CANCEL)

    def add(self, member: str, message: dict[str, Any], due: float, *, pipe: Any = None) -> None:
        """Schedule ``message`` for ``due`` (epoch seconds); replaces a pending ``member``."""
        target = pipe if pipe is not None else self.client.pipeline(transaction=True)
        target.hset(self.keys.payloads, member, json.dumps(message, separators=(",", ":")))
        target.zadd(self.keys.schedule, {member: due})
        if pipe is None:
            target.execute()

    def cancel(self, member: str) -> bool:
        """Remove a pending ``member``; ``True`` if it was still pending."""
        return bool(self._cancel(keys=[self.keys.schedule, self.keys.payloads], args=[member]))

    def claim(self, now: float, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """Atomically take up to ``limit`` entries due at ``now`` (hidden for ``lease`` s)."""
        flat = self._claim(
            keys=[self.keys.schedule, self.keys.inflight, self.keys.payloads],
            args=[repr(now), repr(now + self.lease), limit],
        )
        items = []
        for i in range(0, len(flat), 2):
            member = flat[i].decode() if isinstance(flat[i], bytes) else flat[i]
            items.append((member, json.loads(flat[i + 1])))
        return items

    def done(self, member: str) -> None:
        """Forget a claimed entry once its message was sent."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.keys.inflight, member)
        pipe.hdel(self.keys.payloads, member)
        pipe.execute()

    def postpone(self, member: str, due: float) -> None:
        """Make a claimed entry due again at ``due`` (after a failed send)."""
        self.client.zadd(self.keys.inflight, {member: due}, xx=True)

    def due_at(self, member: str) -> float | None:
        """When ``member`` is due, or ``None`` if it is not pending."""
        score = self.client.zscore(self.keys.schedule, member)
        return None if score is None else float(score)

    def next_due(self) -> float | None:
        """The earliest due time (or lease end), or ``None`` when nothing is pending."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(self.keys.schedule, 0, 0, withscores=True)
        pipe.zrange(self.keys.inflight, 0, 0, withscores=True)
        firsts = [float(found[0][1]) for found in pipe.execute() if found]
        return min(firsts) if firsts else None

    def pending(self) -> int:
        """How many entries are pending (including claimed ones not yet sent)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self.keys.schedule)
        pipe.zcard(self.keys.inflight)
        return sum(int(n) for n in pipe.execute())


class SchedulerThread(threading.Thread):
    """Polls a :class:`RedisSchedule` and hands due messages to ``send``.

    Sleeps until the next due time, at most ``poll`` seconds (so new earlier entries are seen
    within ``poll``). Runs in the worker's main process; several workers may each run one.
    """

    def __init__(self, schedule: RedisSchedule, send: Callable[[dict[str, Any]], None], poll: float = 0.05) -> None:
        super().__init__(name="ormevents-scheduler", daemon=True)
        self.schedule = schedule
        self.send = send
        self.poll = poll
        self._stop_event = threading.Event()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                wait = self.tick()
            except redis.RedisError:
                logger.exception("schedule poll failed; retrying in 1 s")
                wait = 1.0
            self._stop_event.wait(wait)

    def tick(self, limit: int = 100) -> float:
        """Send what is due now; return how long to sleep."""
        items = self.schedule.claim(time.time(), limit)
        for member, message in items:
            try:
                self.send(message)
            except Exception:
                logger.exception("sending scheduled %s failed; trying again in 1 s", member)
                self.schedule.postpone(member, time.time() + 1.0)
            else:
                self.schedule.done(member)
        if len(items) == limit:
            return 0.0
        upcoming = self.schedule.next_due()
        if upcoming is None:
            return self.poll
        return min(max(upcoming - time.time(), 0.0), self.poll)
