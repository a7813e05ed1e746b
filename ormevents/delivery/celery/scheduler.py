"""The Redis schedule of delayed events and retries (:mod:`.poller` sends them when due).

Layout (under the queue name, see :mod:`ormevents.jobs.keys`): a ZSET ``member -> due`` and
a HASH ``member -> message`` of the pending entries; a ZSET ``member -> lease end`` and a HASH
``member -> "<owner>\\n<message>"`` of the entries a poller claimed and is sending. Members are
``event:<id>`` (a delayed event) or ``run:<event id>:<handler>:<attempt>`` (a retry), so adding
the same member twice is one pending entry.

Claiming is atomic (one Lua script): up to ``limit`` due entries move from pending to in flight,
leased to the claiming poller (its *owner* token) until ``now + lease``, so concurrent pollers
(one per worker) never take the same entry. The poller's :class:`~.poller.SchedulerThread` renews the
leases of the entries it still holds every ``lease / 3`` seconds from a second thread, so a
batch that a slow broker takes minutes to send stays its own: **no entry is sent twice while
its claimant lives**. Only when the claimant stops renewing (its process died or hung for a
whole lease) does the lease expire and another poller send the entry again (at-least-once,
never lost). An entry is forgotten only by its owner, after the send. Leases are measured on
Redis's clock (``TIME``), so pollers whose clocks disagree agree on them; a poller that stops
gives its unsent entries back at once and keeps renewing the one it is sending.

During a rolling deploy from a version before owned leases, stop the old workers before starting
new ones: an old poller does not know the claims of a new one and may drop an entry it sees
in flight.

Adding a member that is in flight (a re-publish while the earlier copy is being sent) creates a
new pending entry; it is claimed once the copy in flight is done, so it is never dropped.
:meth:`cancel` only removes pending entries, so ``True`` means the message will not be sent and
``False`` that it was sent, is being sent, or never existed. Nothing is held in worker memory: a
million pending entries cost Redis memory only.

Example::

    schedule = RedisSchedule(redis.Redis.from_url(url), Keys("shop:events"))
    schedule.add("event:42", {"task": "...", "args": []}, due=time.time() + 60)
    schedule.cancel("event:42")     # True: it was pending
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

import redis

from ...jobs.keys import Keys
from ...jobs.schedule_codec import pack, unpack

logger = logging.getLogger("ormevents.delivery.celery.scheduler")

# Every lease is measured on the Redis server's clock (TIME), never a poller's: pollers on hosts
# whose clocks disagree still agree on when a lease ends.
_CLOCK = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function at(seconds) return string.format('%.6f', seconds) end
"""

# KEYS: schedule, in-flight, payloads, claims; ARGV: due by ('' = now), lease seconds, limit, owner.
# Expired leases first (their poller stopped renewing), then due entries. A due entry whose
# member is still in flight waits (a re-publish is sent after the copy in flight).
_CLAIM = _CLOCK + """
local out = {}
local now = clock()
local due_by = ARGV[1] == '' and at(now) or ARGV[1]
local lease_end = at(now + tonumber(ARGV[2]))
local limit = tonumber(ARGV[3])
local function take(member, payload)
  redis.call('ZADD', KEYS[2], lease_end, member)
  redis.call('HSET', KEYS[4], member, ARGV[4] .. '\\n' .. payload)
  table.insert(out, member)
  table.insert(out, payload)
  limit = limit - 1
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', at(now), 'LIMIT', 0, limit)) do
  local held = redis.call('HGET', KEYS[4], member)
  local payload = held and string.sub(held, string.find(held, '\\n', 1, true) + 1)
  if not held then  -- claimed by an older version, which kept the message with the pending ones
    payload = redis.call('HGET', KEYS[3], member)
    if payload and not redis.call('ZSCORE', KEYS[1], member) then redis.call('HDEL', KEYS[3], member) end
  end
  if payload then take(member, payload) else redis.call('ZREM', KEYS[2], member) end
end
if limit > 0 then
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', due_by, 'LIMIT', 0, limit)) do
    if limit > 0 and not redis.call('ZSCORE', KEYS[2], member) then
      redis.call('ZREM', KEYS[1], member)
      local payload = redis.call('HGET', KEYS[3], member)
      if payload then
        redis.call('HDEL', KEYS[3], member)
        take(member, payload)
      end
    end
  end
end
return out
"""

# KEYS: in-flight, claims; ARGV: seconds from now the lease ends (or '' to forget), owner, members...
# Renews (or, with '', forgets) the members still held by owner; returns them.
_HOLD = _CLOCK + """
local kept = {}
local lease_end = ARGV[1] ~= '' and at(clock() + tonumber(ARGV[1]))
local mine = ARGV[2] .. '\\n'
for i = 3, #ARGV do
  local held = redis.call('HGET', KEYS[2], ARGV[i])
  if held and string.sub(held, 1, #mine) == mine then
    if ARGV[1] == '' then
      redis.call('ZREM', KEYS[1], ARGV[i])
      redis.call('HDEL', KEYS[2], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], 'XX', lease_end, ARGV[i])
    end
    table.insert(kept, ARGV[i])
  end
end
return kept
"""

# KEYS: schedule, payloads; ARGV: member. Only a still-scheduled entry can be cancelled.
# KEYS: schedule, payloads; ARGV: member. Returns the payload of the pending entry it removed, or nil.
_CANCEL = """
local payload = redis.call('HGET', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return payload or '{}'
end
return false
"""


def new_owner() -> str:
    """A token naming one poller (``host:pid:random``) in the leases it holds."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisSchedule:
    """Delayed messages in Redis (see module doc). Thread-safe; sync redis-py client."""

    def __init__(self, client: redis.Redis, keys: Keys, lease: float = 30.0) -> None:
        self.client = client
        self.keys = keys
        self.lease = lease
        self._claim = client.register_script(_CLAIM)
        self._hold = client.register_script(_HOLD)
        self._cancel = client.register_script(_CANCEL)

    def add(self, member: str, message: dict[str, Any], due: float, *, pipe: Any = None) -> None:
        """Schedule ``message`` for ``due`` (epoch seconds); replaces a pending ``member`` (one
        being sent is not touched: this one is sent after it)."""
        target = pipe if pipe is not None else self.client.pipeline(transaction=True)
        target.hset(self.keys.payloads, member, pack(message))
        target.zadd(self.keys.schedule, {member: due})
        if pipe is None:
            target.execute()

    def cancel(self, member: str) -> bool:
        """Remove a pending ``member``; ``True`` if it was still pending."""
        return self.remove(member) is not None

    def remove(self, member: str) -> dict[str, Any] | None:
        """Remove a pending ``member``; returns its message, ``None`` if it was not pending."""
        raw = self._cancel(keys=[self.keys.schedule, self.keys.payloads], args=[member])
        return None if raw is None else unpack(raw)

    def claim(self, now: float | None = None, limit: int = 100, owner: str = "") -> list[tuple[str, dict[str, Any]]]:
        """Atomically take up to ``limit`` entries due by ``now`` (default: Redis's clock), leased to
        ``owner`` for ``lease`` s of Redis's clock."""
        flat = self._claim(
            keys=[self.keys.schedule, self.keys.inflight, self.keys.payloads, self.keys.inflight_claims],
            args=["" if now is None else repr(now), repr(self.lease), limit, owner],
        )
        items = []
        for i in range(0, len(flat), 2):
            member = flat[i].decode() if isinstance(flat[i], bytes) else flat[i]
            items.append((member, unpack(flat[i + 1])))
        return items

    def renew(self, members: list[str], owner: str = "", seconds: float | None = None) -> set[str]:
        """Make the leases of the ``members`` ``owner`` still holds end ``seconds`` (default: the
        lease) from now on Redis's clock; returns those members."""
        if not members:
            return set()
        return self._held(self._hold(keys=[self.keys.inflight, self.keys.inflight_claims],
                                     args=[repr(self.lease if seconds is None else seconds), owner, *members]))

    def done(self, member: str, owner: str = "") -> bool:
        """Forget a claimed entry once its message was sent; ``False`` if ``owner`` no longer held it."""
        return bool(self._hold(keys=[self.keys.inflight, self.keys.inflight_claims], args=["", owner, member]))

    def postpone(self, member: str, delay: float, owner: str = "") -> None:
        """Make a claimed entry due again ``delay`` seconds from now (after a failed send, or given
        back at shutdown with 0): any poller may take it then."""
        if self.renew([member], owner, seconds=delay):
            return
        logger.warning("scheduled %s was no longer held by %s when its send failed", member, owner)

    @staticmethod
    def _held(found: Any) -> set[str]:
        return {m.decode() if isinstance(m, bytes) else m for m in found}

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
