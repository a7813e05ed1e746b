"""What the Celery outbox keeps per event loop (:class:`LoopState`): its ``redis.asyncio``
client, the push and schedule scripts, its dispatcher, and the queue length its last push saw,
from which the dispatcher learns whether the workers are behind (then it lingers for fuller
messages: :mod:`.dispatcher`)."""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from .dispatcher import Dispatcher

BEHIND = 2
"""Messages already waiting in the queue when a push came, from which the workers count as behind
(the worker processes' prefetched messages are not in the queue any more: these wait beyond them)."""
BACKLOG_FRESH = 1.0
"""Seconds a queue length seen by a push is trusted (the workers may have caught up since)."""


class LoopState:
    """What one event loop uses: its ``redis.asyncio`` client, the two scripts, its dispatcher,
    and the queue length its last push saw."""

    def __init__(self, loop: weakref.ref[asyncio.AbstractEventLoop], client: Any, push: Any, schedule: Any) -> None:
        self.loop, self.client, self.push, self.schedule = loop, client, push, schedule
        self.dispatcher: Dispatcher = None  # type: ignore[assignment]  # set right after, it needs this state
        self.backlog, self.seen_at = 0, 0.0

    def saw(self, backlog: int) -> None:
        """A push found ``backlog`` messages waiting in the queue."""
        self.backlog, self.seen_at = backlog, time.monotonic()

    def behind(self) -> bool:
        """Whether the workers are behind: the last push, less than :data:`BACKLOG_FRESH` s ago,
        found :data:`BEHIND` messages or more waiting in the queue. Then a hand-off waits a little
        for a fuller message (``OutboxConfig.linger``) and is not spread over several messages: no
        worker is idle to share it, and one message of several events costs a worker much less
        than as many messages of one."""
        return self.backlog >= BEHIND and time.monotonic() - self.seen_at < BACKLOG_FRESH
