"""The opt-in MongoDB inbox: a handler's writes and its completion record in one transaction.

A handler registered with a second parameter (``async def h(event, session)``, see
:mod:`ormevents.handlers.decorators`) is run by the worker inside a MongoDB transaction on the
worker's own client (``ORMEVENTS_MONGO_URL``, database ``ORMEVENTS_DATABASE``):

1. insert the inbox record ``{_id: event.idempotency_key(handler), at}`` into ``_oe_inbox``
   (:mod:`ormevents.jobs.inbox`), the transaction's first statement;
2. call the handler with the session; its writes must pass ``session=session`` (reach the
   database through ``session.client``);
3. keep what it returned in the record (only when it returned something), then commit.

So the effect commits exactly once: a second delivery (a redelivery after a crash, a duplicate
event, a fenced run) collides on the record's ``_id`` with ``DuplicateKeyError``, its transaction
is aborted before the handler runs, and the worker records the first run's result instead
(:class:`InboxOutcome` with ``applied=False``). A concurrent duplicate first gets a write
conflict (``TransientTransactionError``) and, once the other commits, the same collision.

The session is opened before the run takes its lease, and its id travels in the lease's token
(:func:`~ormevents.delivery.celery.leases.new_token`): when a worker takes over the run of a
process that died (:func:`~ormevents.delivery.celery.leases.holder_is_dead`), it first kills
that session (``killSessions``), which aborts the dead run's open transaction at once, instead
of leaving its inbox record locked until the server's transaction lifetime (60 s) runs out.

The loop is PyMongo's own ``with_transaction``: a ``TransientTransactionError`` on the body or
the commit runs the whole body again after a short random back-off, an
``UnknownTransactionCommitResult`` retries the commit, and it gives up after 120 s (the error
is then a failed attempt, retried by the handler's policy). Sync handlers get a
``pymongo.ClientSession`` from a ``MongoClient``; async ones an ``AsyncClientSession`` from an
``AsyncMongoClient`` on the process's worker loop. Both clients are created per process, on
first use.

Example::

    inbox = MongoInbox("mongodb://localhost:27017/?replicaSet=rs0", "app")
    session = inbox.open_sync()
    outcome = inbox.apply_sync(key, lambda s: handler(event, s), event, "billing.charge", session)
    outcome.applied          # False: this (event, handler) had committed already
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from ...events.event import Event
from ...handlers.results import split_result
from ...jobs.inbox import (
    INBOX_COLLECTION,
    INBOX_TTL,
    decode_outcome,
    encode_outcome,
    inbox_record,
)

logger = logging.getLogger("ormevents.delivery.celery.inbox")


class InboxOutcome(NamedTuple):
    """What a session handler's run came to: its JSON value and chained events, and whether its
    effect was applied by this run (``False``: an earlier run had committed it)."""

    value: Any
    children: list[Event]
    applied: bool


def session_hex(session: Any) -> str:
    """The id of a PyMongo session as 32 hex digits (what a run's lease token carries)."""
    return bytes(session.session_id["id"]).hex()


def _lsid(session_id: str) -> dict[str, Any]:
    from bson.binary import Binary

    return {"id": Binary(bytes.fromhex(session_id), 4)}


class _AlreadyApplied(Exception):
    """The inbox record exists: raised inside the transaction to abort it (not transient)."""


class MongoInbox:
    """The inbox of one worker process (see module doc). Not shared across fork."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self._sync: Any = None
        self._async: Any = None
        self._indexed: set[str] = set()

    # ----- sync handlers: the task thread ------------------------------------------------

    def _sync_client(self) -> Any:
        from pymongo import MongoClient

        if self._sync is None:
            self._sync = MongoClient(self.url, tz_aware=True, uuidRepresentation="standard")
        return self._sync

    def open_sync(self) -> Any:
        """A new ``ClientSession`` for a sync handler's run (no round trip)."""
        return self._sync_client().start_session()

    def kill_sync(self, session_id: str) -> None:
        """Kill the session ``session_id`` (hex), aborting its open transaction."""
        self._sync_client().admin.command("killSessions", [_lsid(session_id)])

    def apply_sync(self, key: str, call: Callable[[Any], Any], event: Event, handler: str,
                   session: Any) -> InboxOutcome:
        """Run ``call(session)`` (the handler) in a transaction with the inbox record ``key``;
        ends ``session``."""
        from pymongo.errors import DuplicateKeyError

        inbox = self._sync_client()[self.database][INBOX_COLLECTION]
        if "sync" not in self._indexed:
            inbox.create_index([("at", 1)], expireAfterSeconds=INBOX_TTL, name="oe_inbox_ttl")
            self._indexed.add("sync")

        def body(session: Any) -> tuple[Any, list[Event]]:
            try:
                inbox.insert_one(inbox_record(key), session=session)
            except DuplicateKeyError:
                raise _AlreadyApplied(key) from None
            children, value = split_result(call(session), event, handler)
            if value is not None or children:
                inbox.update_one({"_id": key}, {"$set": {"result": encode_outcome(value, children)}}, session=session)
            return value, children

        try:
            with session:
                value, children = session.with_transaction(body)
        except _AlreadyApplied:
            return InboxOutcome(*decode_outcome(inbox.find_one({"_id": key})), applied=False)
        return InboxOutcome(value, children, applied=True)

    # ----- async handlers: the worker loop -----------------------------------------------

    def _async_client(self) -> Any:
        from pymongo import AsyncMongoClient

        if self._async is None:
            self._async = AsyncMongoClient(self.url, tz_aware=True, uuidRepresentation="standard")
        return self._async

    async def open_async(self) -> Any:
        """A new ``AsyncClientSession`` for an async handler's run (no round trip)."""
        return self._async_client().start_session()

    async def kill_async(self, session_id: str) -> None:
        """Kill the session ``session_id`` (hex), aborting its open transaction."""
        await self._async_client().admin.command("killSessions", [_lsid(session_id)])

    async def apply_async(self, key: str, call: Callable[[Any], Awaitable[Any]], event: Event, handler: str,
                          session: Any) -> InboxOutcome:
        """Await ``call(session)`` (the handler) in a transaction with the inbox record ``key``;
        ends ``session``."""
        from pymongo.errors import DuplicateKeyError

        inbox = self._async_client()[self.database][INBOX_COLLECTION]
        if "async" not in self._indexed:
            await inbox.create_index([("at", 1)], expireAfterSeconds=INBOX_TTL, name="oe_inbox_ttl")
            self._indexed.add("async")

        async def body(session: Any) -> tuple[Any, list[Event]]:
            try:
                await inbox.insert_one(inbox_record(key), session=session)
            except DuplicateKeyError:
                raise _AlreadyApplied(key) from None
            children, value = split_result(await call(session), event, handler)
            if value is not None or children:
                await inbox.update_one({"_id": key}, {"$set": {"result": encode_outcome(value, children)}},
                                       session=session)
            return value, children

        try:
            async with session:
                value, children = await session.with_transaction(body)
        except _AlreadyApplied:
            return InboxOutcome(*decode_outcome(await inbox.find_one({"_id": key})), applied=False)
        return InboxOutcome(value, children, applied=True)

    # ----- shutdown ----------------------------------------------------------------------

    def close_sync(self) -> None:
        """Close the sync client (if one was created)."""
        client, self._sync = self._sync, None
        self._indexed.discard("sync")
        if client is not None:
            client.close()

    async def close_async(self) -> None:
        """Close the async client (if one was created); call it on the worker loop."""
        client, self._async = self._async, None
        self._indexed.discard("async")
        if client is not None:
            await client.close()
