"""A write and the hand-off of its event as one task the caller's cancellation cannot split.

If the caller is cancelled once the write is sent (a client disconnect, ``asyncio.wait_for``, a
task group), the inner task still finishes: the write and its hand-off belong together. The
caller waits for it, then gets its ``CancelledError`` (one, however many times it was
cancelled meanwhile); a failure it can no longer see is logged at ERROR.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from ..events.event import Event

logger = logging.getLogger("ormevents.model.storage")
Outcome = tuple[Any, BaseException | None]


async def run_shielded(work: Coroutine[Any, Any, Outcome], event: Event | None) -> Outcome:
    """Run ``work`` (returning ``(result, publish_error)``) shielded from the caller's cancellation."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError as cancelled:  # the caller's: the write may already be applied
        await outlast(task)  # cancelled again meanwhile: still waits, one CancelledError is re-raised
        _log_unseen(task, event)
        raise cancelled


async def outlast(task: asyncio.Future[Any]) -> asyncio.CancelledError | None:
    """Wait until ``task`` is done, whatever happens to the caller meanwhile (``task`` itself is
    never cancelled); returns the caller's first cancellation, if any, for it to raise afterwards."""
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as error:
            cancelled = cancelled or error
    return cancelled


def _log_unseen(task: asyncio.Future[Outcome], event: Event | None) -> None:
    """What a cancelled caller will not see: a failed write or an event that was not handed off."""
    if task.cancelled():
        return
    error = task.exception()
    if error is None:
        error = task.result()[1]
        if error is None:
            return
    what = f"event {event.name} {event.id}" if event is not None else "a write"
    logger.error("a cancelled save could not complete %s: %r", what, error)
