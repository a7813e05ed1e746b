"""The one place the model layer writes to MongoDB: a unit of work per write, or per transaction.

A :class:`Unit` knows the session (if any), the write, the event records and the after-commit
work. Each model write goes through :meth:`Unit.insert`, :meth:`Unit.update`,
:meth:`Unit.delete` or :meth:`Unit.record`:

* **Outbox** (the runtime's publisher has one, e.g. ``init(redis_uri=...)``): the pending event is
  written by the same single-document write (``$set _oe_outbox.<event id>`` and ``$min`` of
  ``_oe_pending_at``; an insert writes both fields); the same update drops the document's
  entries this process already handed over (``$unset``), so a document written again and
  again never accumulates them. Deletes and custom events write an
  ``_oe_events`` row instead: in the transaction when there is one, else an *intent* row before
  the delete, which the relay publishes only if the document is gone. After the commit the
  record is submitted to the outbox (a non-blocking hand-off; see ``docs/guarantees.md``).
* **Inline** (eager, recording or your own publisher): nothing extra is written; the event is
  published right after the commit, as before.
* **Cancellation**: the driver call and the hand-off run as one inner task shielded from the
  caller's cancellation; a cancelled caller waits for it, then gets its ``CancelledError``.
* **Transactions**: a unit attached to a session in a transaction collects records and
  after-commit work, hands them over when the transaction commits and drops them (putting
  the instances' tracking state back) when it aborts (:mod:`.transaction`).

Driver errors become ormevents errors with the cause chained (:mod:`.driver_errors`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..delivery.base import PublishedEvent
from ..delivery.outbox.records import (
    EVENTS_COLLECTION,
    OUTBOX_FIELD,
    PENDING_FIELD,
    PendingEvent,
    build_pending,
    companions,
    indexes,
    too_large,
)
from ..events.event import Event
from ..runtime import get_runtime
from .driver_errors import retryable_in_transaction, translate
from .deletes import delete_with_record
from .shield import run_shielded

logger = logging.getLogger("ormevents.model.storage")
T = TypeVar("T")
Outcome = tuple[Any, BaseException | None]


@dataclass
class Touched:
    """An instance written in a unit: how to put its tracking state back (``restore``), its
    fields before its first write and after its last (``None``: no document), and the work to
    run for it after the commit (its ``after_commit`` hooks)."""

    restore: Callable[[], None]
    before: dict[str, Any] | None
    work: Callable[..., Awaitable[None]]
    after: dict[str, Any] | None = None


class Unit:
    """One unit of work: a write outside a transaction, or every write of one transaction.

    ``session`` is the driver session the writes use (``None``: none); ``transactional`` is
    true when it is in a transaction, so records and after-commit work wait for the commit.
    """

    def __init__(self, session: Any = None, transactional: bool = False) -> None:
        runtime = self.runtime = get_runtime()
        self.database = runtime.database
        self.publisher = runtime.publisher
        self.outbox = runtime.outbox
        self.max_event_bytes = runtime.event_config.max_event_bytes
        self.session = session
        self.transactional = transactional
        self.open = True
        self.records: list[PendingEvent] = []
        self.events: list[PublishedEvent] = []
        self.touched: dict[int, Touched] = {}
        self.unindexed: set[str] = set()

    @property
    def session_options(self) -> dict[str, Any]:
        """``{"session": session}`` for a driver call outside :meth:`call`, ``{}`` without one."""
        return {} if self.session is None else {"session": self.session}

    # ----- building records (before any I/O) ---------------------------------------------------

    def prepare(self, event: Event | None, home: str, key: Any, retention: float | None = None) -> PendingEvent | None:
        """The record of ``event`` for the outbox (``None`` without an outbox or an event);
        ``retention``: its model's history retention (:class:`~ormevents.delivery.outbox.records.PendingEvent`).

        Checks the event's size either way: :class:`~ormevents.errors.EventTooLargeError`
        before anything is written.
        """
        if event is None:
            return None
        if self.outbox is None:
            wire = event.to_json()  # fails here, before the write, if the event cannot travel
            if len(wire) > self.max_event_bytes:
                raise too_large(event, len(wire), self.max_event_bytes)
            return None
        return build_pending(event, home=home, key=key, max_bytes=self.max_event_bytes, retention=retention)

    # ----- the writes -------------------------------------------------------------------------

    async def insert(self, collection: str, document: dict[str, Any], took_effect: Callable[[Any], bool],
                     pending: PendingEvent | None, event: Event | None, what: str) -> Outcome:
        """``insert_one(document)``, with ``pending`` in its outbox fields."""
        if pending is not None:
            await self.indexed(collection)
            document = {**document, OUTBOX_FIELD: {pending.id: pending.entry()}, PENDING_FIELD: pending.at}
        target = self.database[collection]
        return await self.shielded(lambda: self.call(target.insert_one, document, what=what, document=document),
                                   took_effect, [pending] if pending else [], event)

    async def update(self, collection: str, condition: dict[str, Any], update: dict[str, Any],
                     took_effect: Callable[[Any], bool], pending: PendingEvent | None, event: Event | None,
                     what: str) -> Outcome:
        """``update_one(condition, update)``, adding ``pending`` to the document's outbox and dropping
        the entries of it this process already handed over."""
        if pending is not None:
            await self.indexed(collection)
        update, sent = self.with_record(collection, condition["_id"], update, pending)
        target = self.database[collection]

        def applied(result: Any) -> bool:
            if sent and result.matched_count and self.outbox is not None:
                self.outbox.dropped_entries(collection, condition["_id"], sent)
            return took_effect(result)

        return await self.shielded(lambda: self.call(target.update_one, condition, update, what=what, document=update),
                                   applied, [pending] if pending else [], event)

    def with_record(self, collection: str, key: Any, update: dict[str, Any],
                    pending: PendingEvent | None) -> tuple[dict[str, Any], list[str]]:
        """``update`` adding ``pending`` to document ``key``'s outbox and dropping the entries of it
        this process already handed over; returns it and the ids dropped (report them to the
        outbox with ``dropped_entries`` once the write matched)."""
        if pending is None:
            return update, []
        sent = self.outbox.sent_entries(collection, key) if self.outbox is not None else []
        update = {**update, "$set": {**update.get("$set", {}), pending.path: pending.entry()},
                  "$min": {PENDING_FIELD: pending.at}}
        if sent:
            update["$unset"] = {**update.get("$unset", {}), **{f"{OUTBOX_FIELD}.{event_id}": "" for event_id in sent}}
        return update, sent

    async def delete(self, collection: str, condition: dict[str, Any], object_id: Any,
                     took_effect: Callable[[Any], bool], pending: PendingEvent | None, event: Event | None,
                     what: str) -> Outcome:
        """``delete_one(condition)``; with ``pending``, its ``_oe_events`` row is written in the
        transaction, or as an intent row before the delete (removed if nothing was deleted).

        Events still pending in the document's own outbox are copied to ``_oe_events`` first,
        so a delete never takes an undelivered event with it."""
        records: list[PendingEvent] = [pending] if pending else []
        if pending is not None:
            await self.indexed(EVENTS_COLLECTION)
        else:
            target = self.database[collection]
            return await self.shielded(lambda: self.call(target.delete_one, condition, what=what),
                                       took_effect, records, event)
        return await self.shielded(lambda: delete_with_record(self, collection, condition, object_id, pending,
                                                              records, what), took_effect, records, event)

    async def record(self, pending: PendingEvent, collection: str, object_id: Any, event: Event | None,
                     what: str) -> Outcome:
        """Record a custom event of ``object_id`` in ``_oe_events`` (with the outbox), then hand it off."""
        await self.indexed(EVENTS_COLLECTION)
        row = pending.row(collection, object_id)
        events = self.database[EVENTS_COLLECTION]
        return await self.shielded(lambda: self.call(events.insert_one, row, what=what, document=row),
                                   lambda _: True, [pending], event)

    async def indexed(self, collection: str) -> None:
        """Create the outbox indexes of ``collection`` if this runtime has not yet (the relay finds
        the collections holding records by them). In a transaction, right after the commit: a
        catalog change while it is open would abort it. A model collection's first write also
        creates those of ``_oe_events`` and ``_oe_history`` (the history and its TTL)."""
        if collection in self.runtime.indexed:
            return
        if self.transactional:
            self.unindexed.add(collection)
            return
        for name in (collection, *companions(collection)):
            if name in self.runtime.indexed:
                continue
            target = self.database[name]
            for keys, options in indexes(name):
                await self.call(target.create_index, keys, what=f"creating the outbox index of {name}",
                                use_session=False, **options)
            self.runtime.indexed.add(name)

    async def call(self, method: Callable[..., Awaitable[T]], *args: Any, what: str,
                   document: Mapping[str, Any] | None = None, use_session: bool = True, **options: Any) -> T:
        """``await method(*args, session=..., **options)``, driver errors raised as ormevents errors
        (see module doc); ``use_session=False`` for what may not run in a transaction (indexes)."""
        try:
            if self.session is not None and use_session:
                return await method(*args, session=self.session, **options)
            return await method(*args, **options)
        except Exception as error:
            if self.transactional and retryable_in_transaction(error):
                raise
            typed = translate(error, what, document)
            if typed is None:
                raise
            raise typed from error

    # ----- the hand-off -----------------------------------------------------------------------

    async def shielded(self, send: Callable[[], Awaitable[Any]], took_effect: Callable[[Any], bool],
                       records: list[PendingEvent], event: Event | None) -> Outcome:
        """Send a write and hand over its records/event if ``took_effect(result)``; returns
        ``(result, publish_error)``. Shielded from the caller's cancellation (module doc);
        ``took_effect`` must not await."""

        async def unit() -> Outcome:
            result = await send()
            if not took_effect(result):
                return result, None
            return result, await self._hand_off(records, event)

        return await run_shielded(unit(), event)

    async def _hand_off(self, records: list[PendingEvent], event: Event | None) -> BaseException | None:
        if self.transactional:
            self.records.extend(records)
            if event is not None and self.outbox is None:
                self.events.append(PublishedEvent(event))
            return None
        if self.outbox is not None:
            if records:
                self.outbox.submit(records)
            return None
        if event is None:
            return None
        try:
            await self.publisher.publish(event)
        except Exception as error:  # the write stands: the caller learns of it after the after-hooks
            return error
        logger.debug("emitted %s %s for %s", event.name, event.id, event.object_id)
        return None

    # ----- the end of a transaction -------------------------------------------------------------

    async def committed(self) -> None:
        """The transaction committed: hand over its records (or publish its events), then run the
        after-commit work. Errors (a publish error, then a hook's) reach the caller afterwards."""
        self.open = False
        self.transactional = False  # what follows runs outside the (finished) transaction
        errors: list[BaseException] = []
        for collection in sorted(self.unindexed):
            try:
                await self.indexed(collection)
            except Exception as error:  # the next write to the collection creates them
                logger.warning("could not create the outbox index of %s after a commit: %r", collection, error)
        if self.outbox is not None and self.records:
            self.outbox.submit(self.records)
        for item in self.events:
            try:
                await self.publisher.publish(item.event, delay=item.delay, eta=item.eta)
            except Exception as error:
                errors.append(error)
        for touched in list(self.touched.values()):
            try:
                await touched.work(touched)
            except Exception as error:
                errors.append(error)
        if errors:
            errors[0].add_note("the transaction was committed; its writes stand")
            raise errors[0]

    def aborted(self) -> None:
        """The transaction aborted: drop its records and put each instance's tracking state back."""
        self.open = False
        for touched in reversed(list(self.touched.values())):
            touched.restore()
        self.records.clear()
        self.events.clear()
        self.touched.clear()
