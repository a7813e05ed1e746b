"""The hand-rolled write path every write-side scenario compares with.

What a user writes without ormevents: a PyMongo ``update_one`` and then a Celery
``apply_async`` of the change, either synchronously in the coroutine (the common way; it
blocks the event loop for the send) or through ``asyncio.to_thread``. Messages go to a queue
no worker consumes, so only the publishing side is timed.

Example::

    hand = HandRolled(bench.db.raw_accounts, doc_id=1)
    await hand.insert({"email": "a@x", "balance": 0})
    await hand.write({"balance": 5})                  # update_one + apply_async
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks import raw_celery


class HandRolled:
    """``update_one`` (+ ``apply_async`` of the change) on one document of ``collection``."""

    def __init__(self, collection: Any, doc_id: Any = 1) -> None:
        self.collection = collection
        self.doc_id = doc_id
        self.state: dict[str, Any] = {}

    async def insert(self, document: dict[str, Any]) -> HandRolled:
        """Create the document the writes change."""
        self.state = dict(document)
        await self.collection.insert_one({"_id": self.doc_id, **document})
        return self

    async def update(self, fields: dict[str, Any]) -> dict[str, list[Any]]:
        """``update_one`` with ``$set``; returns the change as ``{field: [old, new]}``."""
        await self.collection.update_one({"_id": self.doc_id}, {"$set": fields})
        changes = {name: [self.state.get(name), value] for name, value in fields.items()}
        self.state.update(fields)
        return changes

    def send(self, changes: dict[str, list[Any]]) -> None:
        """``apply_async`` of the change (to the idle queue)."""
        raw_celery.noop.apply_async(args=["hand-rolled", {"id": self.doc_id, "changes": changes}],
                                    queue=raw_celery.IDLE_QUEUE)

    async def write(self, fields: dict[str, Any]) -> None:
        """``update_one``, then a synchronous ``apply_async`` in the coroutine."""
        self.send(await self.update(fields))

    async def write_threaded(self, fields: dict[str, Any]) -> None:
        """``update_one``, then ``await asyncio.to_thread(apply_async)`` (keeps the loop free)."""
        await asyncio.to_thread(self.send, await self.update(fields))
