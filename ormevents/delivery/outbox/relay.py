"""The relay: publishes outbox records still pending after a grace period, and cleans them up.

The writing process hands each record to the broker right after its commit; the relay covers
what that missed: a broker outage, a process killed between the write and the hand-off, a
record left over when the writer's queue was full. Every ``poll`` seconds, for each collection
that holds outbox records (those with the ``oe_pending`` index, and ``_oe_events``), while
holding that collection's Redis :class:`~.lease.Lease`:

* **one cursor** over the records pending for longer than ``grace`` (5 s; the hand-off takes
  milliseconds), read ``batch`` at a time, the next batch read while this one is published;
* each batch goes to ``publisher.publish_many``: a record already marked sent is skipped there
  (atomically with the push), so the writer and the relay never both publish one;
* an *intent* row (written before a delete outside a transaction) is published only if its
  document is gone; otherwise the delete did not happen and the row is dropped;
* what was read is cleaned up in MongoDB afterwards (:class:`~.cleanup.Cleaner`), whether this
  relay published it or found it already sent.

A batch read more than 30 s before it could be published is skipped (read again next pass): a
record cleaned up meanwhile keeps its sent mark for a minute, so it is never published twice.

Example::

    relay = Relay(database, publisher, redis_client, Keys("shop:events"))
    await relay.run(stop_event)        # until stop_event is set
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from typing import Any

from ...jobs.keys import Keys
from ...urls import redact_url
from ..metrics import metrics
from .cleanup import Cleaner
from .lease import Lease, new_owner
from .records import EVENTS_COLLECTION, INDEX_NAME, OUTBOX_FIELD, PENDING_FIELD, PendingEvent, from_entry, from_row, now

logger = logging.getLogger("ormevents.delivery.outbox.relay")
STALE_BATCH = 30.0
DISCOVERY_EVERY = 30.0


async def outbox_collections(database: Any) -> list[str]:
    """The collections of ``database`` that may hold outbox records (they have the ``oe_pending`` index)."""
    found = []
    for name in sorted(await database.list_collection_names()):
        if name.startswith("system."):
            continue
        indexes = await database[name].index_information()
        if INDEX_NAME in indexes:
            found.append(name)
    return found


class Relay:
    """Publishes pending outbox records of ``database`` through ``publisher`` (see module doc).

    ``redis`` (``redis.asyncio``, the Redis of ``keys``' queue) holds the leases, the sent marks
    and the pass records.
    """

    def __init__(self, database: Any, publisher: Any, redis: Any, keys: Keys, *, grace: float = 5.0,
                 poll: float = 1.0, batch: int = 1000, lease_ttl: float = 15.0,
                 history_seconds: float | None = 7 * 24 * 3600) -> None:
        self.database, self.publisher, self.redis, self.keys = database, publisher, redis, keys
        self.grace, self.poll, self.batch, self.lease_ttl = grace, poll, batch, lease_ttl
        self.owner = new_owner()
        self.cleaner = Cleaner(lambda: database, history_seconds, self._forget)
        self.published = 0
        self._leases: dict[str, Lease] = {}
        self._known: tuple[float, list[str]] = (0.0, [])
        self._failing = False

    async def run(self, stop: asyncio.Event | None = None, *, once: bool = False) -> None:
        """Relay every ``poll`` seconds until ``stop`` is set (``once``: one pass), cleaning up
        between passes; the leases are released at the end."""
        stop = stop or asyncio.Event()
        logger.info("outbox relay %s started (grace %.1f s, poll %.1f s)", self.owner, self.grace, self.poll)
        cleaning = asyncio.ensure_future(self._clean_until(stop))
        try:
            while not stop.is_set():
                try:
                    await self.run_once(cleanup=False)
                except Exception as error:  # the broker or MongoDB is down: try again next pass
                    if not self._failing:
                        logger.warning("outbox relay pass failed (%s); retrying every %.1f s", redact_url(repr(error)),
                                       self.poll)
                    self._failing = True
                else:
                    if self._failing:
                        logger.info("outbox relay works again")
                    self._failing = False
                if once:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), self.poll)
                except TimeoutError:
                    pass
        finally:
            cleaning.cancel()
            await asyncio.gather(cleaning, return_exceptions=True)
            await self.close()

    async def run_once(self, cleanup: bool = True) -> int:
        """One pass over every outbox collection; returns how many events it published."""
        total = 0
        for name in await self.collections():
            total += await self.relay(name)
        if cleanup:
            await self.cleaner.run()
        return total

    async def collections(self) -> list[str]:
        """The outbox collections, looked up again every 30 s."""
        checked, names = self._known
        if time.monotonic() - checked > DISCOVERY_EVERY or not names:
            names = await outbox_collections(self.database)
            self._known = (time.monotonic(), names)
        return names

    async def relay(self, name: str) -> int:
        """Publish the pending records of collection ``name`` if this relay holds its lease."""
        lease = self._leases.get(name)
        if lease is None:
            lease = self._leases[name] = Lease(self.redis, self.keys.relay_lease(name), self.keys.relay_fence(name),
                                               self.lease_ttl, self.owner)
        if not await lease.acquire():
            return 0
        cutoff = now() - timedelta(seconds=self.grace)
        if name == EVENTS_COLLECTION:
            query, projection = {"pending_at": {"$lte": cutoff}}, {"n": 1, "at": 1, "w": 1, "due": 1, "c": 1, "o": 1,
                                                                   "intent": 1, "pending_at": 1}
        else:
            query, projection = {PENDING_FIELD: {"$lte": cutoff}}, {OUTBOX_FIELD: 1}
        cursor = self.database[name].find(query, projection, batch_size=self.batch)
        published = 0
        upcoming = asyncio.ensure_future(cursor.to_list(self.batch))
        try:
            while True:
                documents = await upcoming
                read_at = time.monotonic()
                if not documents:
                    break
                upcoming = asyncio.ensure_future(cursor.to_list(self.batch))
                await asyncio.sleep(0)  # the next batch is asked for before this one is worked on
                records = await self._records(name, documents, cutoff)
                if time.monotonic() - read_at > STALE_BATCH:
                    continue  # a record cleaned up meanwhile could lose its sent mark: read it again next pass
                handed = await self.publisher.publish_many(records) if records else 0
                published += handed
                self.cleaner.add(records)
                if handed:
                    logger.info("relay published %d of %d pending events of %s (fence %d)", handed, len(records),
                                name, lease.fence)
                if not await lease.acquire():
                    logger.warning("relay %s lost the lease of %s; another relay goes on", self.owner, name)
                    break
        finally:
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)
            await _close(cursor)
        self.published += published
        metrics().relayed.inc(published)
        await self.redis.hset(self.keys.relay_passes, name, json.dumps(
            {"at": time.time(), "by": self.owner, "fence": lease.fence, "published": published}))
        return published

    async def _records(self, name: str, documents: list[dict[str, Any]], cutoff: Any) -> list[PendingEvent]:
        if name != EVENTS_COLLECTION:
            records = []
            for document in documents:
                due = [from_entry(event_id, entry, name, document["_id"])
                       for event_id, entry in (document.get(OUTBOX_FIELD) or {}).items() if entry["at"] <= cutoff]
                if not due:  # written again since: its marker only moved down; set it exactly
                    self.cleaner.recompute(name, document["_id"])
                records.extend(due)
            return records
        intents = [row for row in documents if row.get("intent")]
        standing = await self._standing(intents) if intents else set()
        if standing:
            from pymongo import DeleteOne

            await self.database[EVENTS_COLLECTION].bulk_write(
                [DeleteOne({"_id": row["_id"], "intent": True}) for row in intents if row["_id"] in standing],
                ordered=False)
            logger.info("dropped %d delete intents whose documents still exist (their deletes did not happen)",
                        len(standing))
        return [from_row(row) for row in documents if row["_id"] not in standing]

    async def _standing(self, intents: list[dict[str, Any]]) -> set[Any]:
        """The intent rows whose documents still exist."""
        by_collection: dict[str, list[dict[str, Any]]] = {}
        for row in intents:
            by_collection.setdefault(row["c"], []).append(row)
        standing: set[Any] = set()
        for collection, rows in by_collection.items():
            existing = {d["_id"] async for d in self.database[collection].find(
                {"_id": {"$in": [row["o"] for row in rows]}}, {"_id": 1})}
            standing.update(row["_id"] for row in rows if row["o"] in existing)
        return standing

    async def _clean_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            await self.cleaner.run()

    async def _forget(self, ids: list[str]) -> None:
        for start in range(0, len(ids), 1000):
            await self.redis.zrem(self.keys.outbox_sent, *ids[start:start + 1000])

    async def close(self) -> None:
        """Clean up what was read, and release the leases this relay holds."""
        try:
            await self.cleaner.run()
            for lease in self._leases.values():
                await lease.release()
        except Exception as error:  # they expire by themselves
            logger.debug("relay close: %r", error)


async def _close(cursor: Any) -> None:
    closing = getattr(cursor, "close", None)
    if closing is not None:
        result = closing()
        if asyncio.iscoroutine(result):
            await result
