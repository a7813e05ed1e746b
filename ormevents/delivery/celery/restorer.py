"""Puts back on their queue the ormevents messages a worker took and never acknowledged.

kombu restores a Redis message whose worker died before acknowledging it, once the message has
been unacknowledged for the ``visibility_timeout`` — from a timer that kombu 5.7 does not
always re-arm after the worker reconnects to a restarted Redis (fault scenario 1 saw messages
stay in the ``unacked`` hash for more than 90 s with a 10 s timeout). Each worker's main process
therefore runs a :class:`Restorer`: every ``min(10, visibility_timeout / 2)`` seconds one Lua
script moves the entries of the queues this worker consumes that have been unacknowledged for
longer than the timeout back to the head of their queue, marked ``redelivered`` — atomically,
so it and kombu's own restore never both put one entry back. Messages of other queues (and of
exchanges other than the default one) are left to kombu. A restored copy of a message whose
first copy is still running is skipped by the run ledger, as kombu's restores are.

Example::

    restorer = Restorer(client, ["shop:events"], visibility_timeout=3600)
    restorer.start()
    ...
    restorer.stop()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis

from .periodic import PeriodicThread
from .transport import UNACKED_KEYS

logger = logging.getLogger("ormevents.delivery.celery.restorer")

KOMBU_VISIBILITY_TIMEOUT = 3600.0
"""kombu's default ``visibility_timeout`` (seconds)."""

# KEYS: unacked HASH, its index ZSET; ARGV: restore entries older than this, how many to look at,
# then the queues to restore to. Returns the task names and ids of the messages it put back.
RESTORE = """
local ours = {}
for i = 3, #ARGV do ours[ARGV[i]] = true end
local restored = {}
for _, tag in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local raw = redis.call('HGET', KEYS[1], tag)
  if not raw then
    redis.call('ZREM', KEYS[2], tag)
  else
    local ok, entry = pcall(cjson.decode, raw)
    if ok and type(entry) == 'table' and entry[2] == '' and type(entry[3]) == 'string' and ours[entry[3]]
        and type(entry[1]) == 'table' then
      local message = entry[1]
      local task, id = '?', '?'
      if type(message.headers) == 'table' then
        message.headers.redelivered = true
        task, id = tostring(message.headers.task), tostring(message.headers.id)
      end
      if type(message.properties) == 'table' and type(message.properties.delivery_info) == 'table' then
        message.properties.delivery_info.redelivered = true
      end
      redis.call('RPUSH', entry[3], cjson.encode(message))
      redis.call('HDEL', KEYS[1], tag)
      redis.call('ZREM', KEYS[2], tag)
      table.insert(restored, task .. '[' .. id .. ']')
    end
  end
end
return restored
"""


class Restorer(PeriodicThread):
    """Restores this worker's queues' unacknowledged messages after the visibility timeout (see module doc)."""

    def __init__(self, client: redis.Redis, queues: Sequence[str], visibility_timeout: float | None = None,
                 batch: int = 1000) -> None:
        self.visibility_timeout = float(visibility_timeout or KOMBU_VISIBILITY_TIMEOUT)
        super().__init__("ormevents-restorer", min(10.0, max(0.5, self.visibility_timeout / 2)))
        self.queues, self.batch = sorted(set(queues)), batch
        self._script = client.register_script(RESTORE)

    def tick(self) -> None:
        """Restore what has been unacknowledged for longer than the timeout (once)."""
        if not self.queues:
            return
        ceil = time.time() - self.visibility_timeout
        restored = self._script(keys=list(UNACKED_KEYS), args=[ceil, self.batch, *self.queues])
        for message in restored:
            logger.warning("put back %s: unacknowledged for more than %.0f s (its worker died or lost Redis "
                           "before acknowledging it)", message.decode() if isinstance(message, bytes) else message,
                           self.visibility_timeout)
