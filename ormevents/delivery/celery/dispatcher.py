"""The per-event-loop hand-off of committed outbox records to the broker.

``save()`` returns once its write (with the event's record) is acknowledged; it only *submits*
the record here, which never waits and never raises. One :class:`Dispatcher` per event loop then
hands the records over on that loop (no thread hop): everything submitted while a push is in
flight goes in the next one, so under concurrency the pushes batch by themselves (at most
:data:`BATCH` records each). While the workers are behind (``behind()``: the broker queue was long
at the last push), a push also waits up to ``OutboxConfig.linger`` (10 ms) for a full message
(``batch_events``), so one writer's successive saves share messages too; ``flush()`` never
waits. A second task cleans up sent records in MongoDB every
``cleanup_interval`` (:class:`~ormevents.delivery.outbox.cleanup.Cleaner`).

**Broker down.** A failed push logs ONE warning for the outage ("events wait in the outbox; the
relay delivers them") and drops the batch from memory: the records are durable in MongoDB and
the relay publishes them after its grace period. Until a probe (every 1 s, backing off to 30 s)
reaches the broker again, submitted records are left to the relay at once; the recovery is
logged at INFO with the outage's length. Beyond ``queue_limit`` waiting records, new ones are
left to the relay too (the save never waits).

Example::

    dispatcher = Dispatcher(push, ping, cleaner, label="redis://cache:6379/0")
    dispatcher.submit(records)            # from the write path, after the commit
    await dispatcher.flush()              # tests, shutdown
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence

from ...config import OutboxConfig
from ...urls import redact_url
from ..outbox.cleanup import Cleaner
from ..outbox.records import PendingEvent

logger = logging.getLogger("ormevents.delivery.celery.dispatcher")
BATCH = 500
WRITER_FIRST = 3
"""Loop turns the dispatcher lets go by once woken, so that the ``save()`` that submitted returns
to its caller first (its result reaches the caller three turns after the write task ends) and
the push runs while the caller awaits its next I/O; submissions meanwhile join the push."""
PROBE_FIRST, PROBE_MAX = 1.0, 30.0
RECENT = 4096
"""Ids handed over lately that a dispatcher remembers: a second record of one event (a delete
hands the still-pending records of its document over again, as ``_oe_events`` rows), in the same
push or a later one, is then cleaned up without being pushed again. The queue's sent marks would
skip it in a message of its own, but not inside a message it shares with other events."""


class Dispatcher:
    """Hands records to the broker on the loop it was created on (see module doc).

    ``push(records)`` sends a batch (raising on a broker problem); ``ping()`` checks the broker;
    ``label`` names the broker in logs (already redacted); ``behind()`` says whether the workers
    are behind (then a push lingers for a fuller message).
    """

    def __init__(self, push: Callable[[Sequence[PendingEvent]], Awaitable[int]], ping: Callable[[], Awaitable[object]],
                 cleaner: Cleaner, label: str, config: OutboxConfig | None = None,
                 errors: tuple[type[BaseException], ...] = (OSError,),
                 behind: Callable[[], bool] = lambda: False) -> None:
        self.config = config or OutboxConfig()
        self.cleaner = cleaner
        self.label = label
        self.outage_since: float | None = None
        self.handed = 0
        self.left_to_relay = 0
        self._push, self._ping, self._errors, self._behind = push, ping, errors, behind
        self._queue: deque[PendingEvent] = deque()
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # a full message waits, or a flush: stop lingering
        self._flushing = False  # a flush waits: no lingering until the queue is empty
        self._full = min(self.config.batch_events, self.config.queue_limit)
        self._recent: OrderedDict[str, None] = OrderedDict()  # oldest first
        self._idle = asyncio.Event()
        self._idle.set()
        self._overflowing = False
        self._left_before = 0
        self._probe: asyncio.Task[None] | None = None
        self._tasks = [asyncio.ensure_future(self._run()), asyncio.ensure_future(self._clean())]

    def submit(self, records: Sequence[PendingEvent]) -> None:
        """Queue committed ``records`` for the hand-off (never waits, never raises)."""
        if self.outage_since is not None:
            self.left_to_relay += len(records)
            return
        if len(self._queue) + len(records) > self.config.queue_limit:
            self.left_to_relay += len(records)
            if not self._overflowing:
                logger.warning("%d events wait for their hand-off to %s: newer ones are left to the relay",
                               len(self._queue), self.label)
            self._overflowing = True
            return
        self._overflowing = False
        self._queue.extend(records)
        if len(self._queue) >= self._full:
            self._hurry.set()
        self._idle.clear()
        self._wake.set()

    async def flush(self, cleanup: bool = False) -> None:
        """Wait until everything submitted so far was handed over (or left to the relay); a
        lingering push goes at once."""
        if not self._idle.is_set():
            self._flushing = True
            self._hurry.set()
        await self._idle.wait()
        if cleanup:
            await self.cleaner.run()

    async def close(self, timeout: float = 5.0) -> None:
        """Hand over what is queued (within ``timeout``), clean up once, and stop both tasks."""
        try:
            await asyncio.wait_for(self.flush(cleanup=True), timeout)
        except (TimeoutError, Exception) as error:  # what is left stays pending for the relay
            logger.debug("outbox hand-off not finished at close: %r", error)
        for task in [*self._tasks, *([self._probe] if self._probe else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._probe] if self._probe else []), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            for _ in range(WRITER_FIRST):
                await asyncio.sleep(0)
            self._wake.clear()
            while self._queue:
                await self._linger()
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                fresh = list({record.id: record for record in batch if record.id not in self._recent}.values())
                try:
                    self.handed += await self._push(fresh) if fresh else 0
                except self._errors as error:
                    _still_running()  # redis-py may turn our cancellation into a ConnectionError
                    self._down(error, len(batch) + len(self._queue))
                    self._queue.clear()
                    break
                except Exception:  # not the broker (a bug): flush() must not wait forever
                    logger.exception("handing %d events over to %s failed; they wait in the outbox for the relay",
                                     len(batch) + len(self._queue), self.label)
                    self.left_to_relay += len(batch) + len(self._queue)
                    self._queue.clear()
                    break
                self._remember(fresh)
                self.cleaner.add(batch)
                _still_running()
            if not self._queue:
                self._flushing = False
                self._idle.set()

    def _remember(self, records: Sequence[PendingEvent]) -> None:
        self._recent.update((record.id, None) for record in records)
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)

    def lingers(self) -> bool:
        """Whether hand-offs linger now: ``config.linger`` is set and the workers are behind. Then
        a push waits for a fuller message and is not spread over several (no worker is idle to
        share it)."""
        return self.config.linger > 0 and self._behind()

    async def _linger(self) -> None:
        """While hand-offs linger (:meth:`lingers`), wait up to ``config.linger`` for a full
        message (or a flush) before each push."""
        if self._flushing or len(self._queue) >= self._full or not self.lingers():
            return
        self._hurry.clear()
        try:
            async with asyncio.timeout(self.config.linger):
                await self._hurry.wait()
        except TimeoutError:
            pass

    async def _clean(self) -> None:
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            if len(self.cleaner):
                await self.cleaner.run()
                _still_running()

    def _down(self, error: BaseException, count: int) -> None:
        self.left_to_relay += count
        if self.outage_since is not None:
            return
        self.outage_since = time.monotonic()
        self._left_before = self.left_to_relay - count
        logger.warning("broker %s unreachable (%s): events are kept in the outbox and the relay delivers them "
                       "once it is back; writes go on", self.label, _short(error))
        self._probe = asyncio.ensure_future(self._wait_for_broker())

    async def _wait_for_broker(self) -> None:
        pause = PROBE_FIRST
        while True:
            await asyncio.sleep(pause)
            try:
                await self._ping()
            except self._errors:
                _still_running()
                pause = min(pause * 2, PROBE_MAX)
                continue
            _still_running()
            since, self.outage_since = self.outage_since or time.monotonic(), None
            logger.info("broker %s is back after %.1f s; %d events written meanwhile are delivered by the relay",
                        self.label, time.monotonic() - since, self.left_to_relay - self._left_before)
            return


def _still_running() -> None:
    """Raise ``CancelledError`` if this task was asked to stop (a library may have swallowed it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _short(error: BaseException) -> str:
    text = redact_url(f"{type(error).__name__}: {error}")
    return text if len(text) < 200 else text[:200] + "..."
