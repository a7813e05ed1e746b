"""The Celery publisher's outbox: records handed to the broker after the commit, marked sent in Redis.

* **Several events per message.** Events handed over together (a burst of concurrent writes,
  a bulk write, a relay batch, ``publish_many``) travel as ``ormevents.dispatch_batch``
  messages of at most ``OutboxConfig.batch_events`` events (default 32; 1 sends one
  ``ormevents.dispatch`` per event, for workers older than 0.2), cut evenly and into at least
  ``min(n, SPREAD)`` messages so that pool processes share a small burst (:func:`.envelope.batches`).
  A lone event is one ``ormevents.dispatch``. The worker dispatches each event of a batch as
  if it had come alone (:mod:`.batch`).
* **Redis broker** (the broker is ``redis_url``'s Redis): one Lua script per hand-off LPUSHes the
  hand-built messages (:mod:`.envelope`) onto the queue and adds their ids to the
  ``<queue>:outbox:sent`` ZSET, atomically, skipping messages whose ids are all there already (so
  the writer and the relay do not both push one record; a batch only part of which was sent goes
  whole, and the worker's run ledger skips the runs already done). A record due later
  (``emit(delay=...)``) goes into the Redis schedule instead, in the same kind of script, with
  its ``scheduled`` status.
* **Other brokers** (RabbitMQ ``amqp://``, or a Redis other than ``redis_url``): Celery's producer
  sends the messages on the publisher's threads (off the loop); the ids are marked sent after
  (a crash in between sends one again: at least once).

A sent mark is dropped 60 s after MongoDB's clean-up of its record (and marks older than an
hour always), so the ZSET holds about a minute of events. All of it runs on the event loop that
wrote (:class:`~.dispatcher.Dispatcher`, one per loop), with ``redis.asyncio``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ...config import OutboxConfig
from ...jobs.schedule_codec import pack
from ...urls import redact_url
from ..outbox.cleanup import Cleaner
from ..outbox.records import PendingEvent
from .config import DeliverySettings
from .dispatcher import Dispatcher
from .envelope import EnvelopeBuilder, batches
from .loop_state import LoopState
from .transport import UNACKED_KEYS

logger = logging.getLogger("ormevents.delivery.celery.outbox")
T = TypeVar("T")
MARK_LIFETIME = 3600.0

# KEYS: queue list, sent ZSET, kombu's unacked HASH and its index ZSET; ARGV: now, prune-before,
# then one group per message: mark ('1': its ids are marked sent, skipping ids already there; '0':
# not marked), n, n event ids, delivery tag, message. A message all of whose ids were already sent
# is not pushed. Each message is recorded as unacknowledged as it is pushed (see
# ormevents.delivery.celery.transport: kombu restores it if a worker dies between its BRPOP and
# its own record). Returns how many events were handed over and how many messages were waiting in
# the queue before the push (the dispatcher lingers for fuller messages while it is long: see
# LoopState.behind).
PUSH = """
local waiting = redis.call('LLEN', KEYS[1])
local messages, marks, unacked, index, handed = {}, {}, {}, {}, 0
local where = ',"",' .. cjson.encode(KEYS[1]) .. ']'
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  local fresh = 0
  for j = i + 2, i + 1 + n do
    if ARGV[i] == '0' then fresh = fresh + 1
    elseif not redis.call('ZSCORE', KEYS[2], ARGV[j]) then
      fresh = fresh + 1; table.insert(marks, ARGV[1]); table.insert(marks, ARGV[j])
    end
  end
  if fresh > 0 then
    local tag, message = ARGV[i + 2 + n], ARGV[i + 3 + n]
    table.insert(messages, message)
    table.insert(unacked, tag); table.insert(unacked, '[' .. message .. where)
    table.insert(index, ARGV[1]); table.insert(index, tag)
    handed = handed + fresh
  end
  i = i + 4 + n
end
if #messages > 0 then
  redis.call('LPUSH', KEYS[1], unpack(messages))
  redis.call('HSET', KEYS[3], unpack(unacked))
  redis.call('ZADD', KEYS[4], unpack(index))
end
if #marks > 0 then redis.call('ZADD', KEYS[2], unpack(marks)) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
return {handed, waiting}
"""

# KEYS: sent ZSET, schedule ZSET, schedule payloads HASH; ARGV: now, then groups of
# (id, member, due, packed message). No status record: the entry is the status while it waits.
SCHEDULE = """
local n = 0
for i = 2, #ARGV, 4 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 3])
    redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i + 1])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


class CeleryOutbox:
    """The :class:`~ormevents.delivery.base.Outbox` of a
    :class:`~ormevents.delivery.celery.publisher.CeleryPublisher` (see module doc).

    ``send_many(messages)`` sends message dicts through Celery's producer off the loop (the
    publisher's threads), for brokers the script cannot push to.
    """

    def __init__(self, settings: DeliverySettings,
                 send_many: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> None:
        self._send_many = send_many
        self.settings = settings
        self.config = OutboxConfig()
        self.database: Callable[[], Any] | None = None
        self.fast = settings.broker_is_redis_url
        self.label = redact_url(settings.broker)
        self.envelopes = EnvelopeBuilder(settings.queue_name, settings.message_options())
        self._dispatchers: dict[int, LoopState] = {}
        self._pid = os.getpid()

    def bind(self, database: Callable[[], Any], config: OutboxConfig) -> None:
        """The database holding the records and the outbox settings (from ``init()``)."""
        self.database, self.config = database, config

    def submit(self, records: Sequence[PendingEvent]) -> None:
        """Queue committed records for this loop's dispatcher (never waits, never raises)."""
        self._dispatcher().submit(records)

    def sent_entries(self, home: str, key: Any) -> list[str]:
        """Ids of the entries of document ``key`` this loop handed over and has not cleaned up yet."""
        state = self._dispatchers.get(id(asyncio.get_running_loop()))
        return state.dispatcher.cleaner.sent(home, key) if state is not None else []

    def dropped_entries(self, home: str, key: Any, ids: list[str]) -> None:
        """A write of document ``key`` removed entries ``ids`` itself (see :meth:`Cleaner.dropped`)."""
        state = self._dispatchers.get(id(asyncio.get_running_loop()))
        if state is not None:
            state.dispatcher.cleaner.dropped(home, key, ids)

    def in_flight(self, home: str, key: Any) -> list[PendingEvent]:
        """The records of document ``key`` handed over by any loop of this process and not yet in
        the history (see :meth:`Cleaner.in_flight`)."""
        return [r for state in list(self._dispatchers.values()) for r in state.dispatcher.cleaner.in_flight(home, key)]

    async def flush(self, cleanup: bool = False) -> None:
        """Wait for this loop's dispatcher (see :meth:`Dispatcher.flush`)."""
        state = self._dispatchers.get(id(asyncio.get_running_loop()))
        if state is not None and os.getpid() == self._pid:
            await state.dispatcher.flush(cleanup)

    async def close(self) -> None:
        """Hand over what this loop queued, stop its dispatcher and close its Redis client; forget
        the dispatchers of other loops (their records stay pending for the relay)."""
        states, self._dispatchers = self._dispatchers, {}
        state = states.get(id(asyncio.get_running_loop()))
        if state is not None and state.loop() is asyncio.get_running_loop() and os.getpid() == self._pid:
            await state.dispatcher.close()
            await state.client.aclose()

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's dispatchers (their loops and sockets are the parent's)."""
        self._dispatchers, self._pid = {}, os.getpid()

    # ----- pushing ----------------------------------------------------------------------------

    def state(self) -> LoopState:
        """This loop's client, scripts and dispatcher (created on first use)."""
        self._dispatcher()
        return self._dispatchers[id(asyncio.get_running_loop())]

    async def push(self, state: LoopState, records: Sequence[PendingEvent], *, mark: bool = True) -> int:
        """Hand ``records`` to the broker and mark them sent (already-sent ones are skipped);
        returns how many were handed over. Raises the client's error when the broker is down."""
        now = time.time()
        later = [r for r in records if r.due is not None and r.due > now]
        at_once = [r for r in records if r.due is None or r.due <= now] if later else list(records)
        handed = await self._schedule(state, later, now) if later else 0
        if not at_once:
            return handed
        if not self.fast:
            return handed + await self._produce(state.client, at_once, now, mark)
        args: list[Any] = [now, now - MARK_LIFETIME]
        flag = "1" if mark else "0"
        for group in batches(at_once, self.config.batch_events, spread=not state.dispatcher.lingers()):
            ids = [record.id for record in group]
            args += [flag, len(ids), *ids, *self.envelopes.batch([record.wire for record in group], ids, now)]
        keys = [self.settings.queue_name, self.settings.keys.outbox_sent, *UNACKED_KEYS]
        pushed, backlog = await self._bounded(state.push(keys=keys, args=args))
        state.saw(int(backlog))
        return handed + int(pushed)

    async def _schedule(self, state: LoopState, records: Sequence[PendingEvent], now: float) -> int:
        from .sending import event_member

        keys = self.settings.keys
        args: list[Any] = [now]
        for record in records:
            due = float(record.due or now)
            message = self.envelopes.message(record.wire, record.id, due)
            args += [record.id, event_member(record.id), due, pack(message)]
        keys_used = [keys.outbox_sent, keys.schedule, keys.payloads]
        return int(await self._bounded(state.schedule(keys=keys_used, args=args)))

    async def _produce(self, client: Any, records: Sequence[PendingEvent], now: float, mark: bool) -> int:
        """Another broker: Celery's producer on the publisher's threads, then the marks."""
        sent_key = self.settings.keys.outbox_sent
        if mark:
            scores = await self._bounded(client.zmscore(sent_key, [r.id for r in records]))
            records = [r for r, score in zip(records, scores) if score is None]
        if not records:
            return 0
        messages = [self.envelopes.batch_message([r.wire for r in group], [r.id for r in group], now)
                    for group in batches(records, self.config.batch_events)]
        await self._send_many(messages)
        if mark:
            await self._bounded(client.zadd(sent_key, {r.id: now for r in records}))
        return len(records)

    async def forget(self, client: Any, ids: list[str]) -> None:
        """Drop the sent marks of records MongoDB no longer holds as pending."""
        for start in range(0, len(ids), 1000):
            await self._bounded(client.zrem(self.settings.keys.outbox_sent, *ids[start:start + 1000]))

    async def _bounded(self, call: Awaitable[T]) -> T:
        """``call`` (one command on this loop's client), bounded by the publish timeout: one
        ``asyncio.timeout`` over its send and its reply. The client has no socket timeout of its
        own, which redis-py would enforce with a task per send (``asyncio.wait_for``): measured
        ~165 -> ~145 us of CPU per push. A timeout raises :class:`TimeoutError` (an ``OSError``)."""
        async with asyncio.timeout(self.settings.publish_retry.timeout):
            return await call

    # ----- the dispatcher of this loop ----------------------------------------------------------

    def _dispatcher(self) -> Dispatcher:
        loop = asyncio.get_running_loop()
        if os.getpid() != self._pid:
            self.reset_after_fork()
        known = self._dispatchers.get(id(loop))
        if known is not None and known.loop() is loop:
            return known.dispatcher
        import redis
        import redis.asyncio

        from ...errors import BrokerUnavailableError

        timeout = self.settings.publish_retry.timeout
        # One connection per loop, held (no pool round trip per push); its lock serialises the
        # dispatcher and any publish_many on this loop. Each call is bounded by _bounded(), so the
        # client has no socket timeout: redis-py 8 defaults to 5 s, given explicitly as None here.
        client = redis.asyncio.Redis.from_url(self.settings.redis_url, socket_connect_timeout=timeout,
                                              socket_timeout=None, single_connection_client=True)
        if self.database is None:
            raise RuntimeError("the outbox is not bound to a database: ormevents.init() binds it")
        state = LoopState(weakref.ref(loop), client, client.register_script(PUSH), client.register_script(SCHEDULE))
        cleaner = Cleaner(self.database, self.config.history_seconds, lambda ids: self.forget(client, ids))
        state.dispatcher = Dispatcher(lambda records: self.push(state, records), lambda: self._bounded(client.ping()),
                                      cleaner, self.label, self.config,
                                      (redis.RedisError, OSError, BrokerUnavailableError), behind=state.behind)
        self._dispatchers[id(loop)] = state
        return state.dispatcher

