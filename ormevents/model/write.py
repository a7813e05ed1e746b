"""The write step of a model instance: hooks, diff, compare-and-set conditions, the event, then
the unit of work (:mod:`.storage`) that writes it with its outbox record and hands it off.

* **Conditional writes.** Updates and deletes carry the compare-and-set conditions of
  :mod:`ormevents.model.compare_and_set`: they apply only if the paths they change (for a delete,
  every field) still hold what this instance last read or wrote. When nothing matched,
  :func:`~ormevents.model.after.refusal` tells a deleted document from a changed one.
* **Events before I/O.** The event (and its outbox record, size-checked) is built before the
  driver is called: an unserialisable or oversized event fails with nothing written.
* **Sessions.** ``session`` (or the enclosing :func:`ormevents.transaction`) decides the unit
  the write joins (:func:`~ormevents.model.transaction.unit_for`).
* **Cancellation** and the hand-off: see :meth:`ormevents.model.storage.Unit.shielded`.

Depends on the :class:`~ormevents.model.tracked.Tracked` protocol, not on the model class.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ..changes.conditions import ChangeContext
from ..changes.diff import EMPTY, diff, top_fields, update_document
from ..delivery.base import PublishedEvent, due_time
from ..delivery.outbox.records import EVENTS_COLLECTION
from ..events.event import Event
from .after import finish, joined, refusal, restore_point
from .bson_form import to_bson
from .compare_and_set import expected_filter, stored_after, write_paths
from .hooks import HookKind, run_hooks
from .tracked import Tracked
from .transaction import unit_for
from .types import new_id

logger = logging.getLogger("ormevents.model.write")


async def insert(instance: Tracked, run: bool, emit: bool, session: Any = None) -> None:
    """Insert a new ``instance`` (``run``: with hooks; ``emit``: with its ``created`` event)."""
    model = type(instance)
    meta = model.__ormevents__
    if instance.id is None:
        instance.id = new_id(model.__name__, model.__pydantic_fields__["id"].annotation)
    if run:
        for kind in (HookKind.BEFORE_CREATE, HookKind.BEFORE_WRITE):
            await run_hooks(instance, meta.hooks[kind], instance._pending_context)
    unit = unit_for(session)
    current = instance._fields_document()
    changes = diff(None, current)
    event = instance._event("created", current, changes) if emit else None
    document = to_bson({"_id": instance.id, **current})
    pending = unit.prepare(event, meta.collection, document["_id"], meta.retention)  # fails before writing if unserializable
    stored = stored_after({}, {"$set": {k: v for k, v in document.items() if k != "_id"}})
    done = joined(unit, instance, run)

    def inserted(result: Any) -> bool:
        instance._mark_persisted(current, changes, stored)
        return True

    _, publish_error = await unit.insert(meta.collection, document, inserted, pending, event,
                                         f"insert of {model.__name__} {instance.id}")
    await finish(instance, (HookKind.AFTER_CREATE, HookKind.AFTER_WRITE) if run else (), changes, current, publish_error)
    await done(current, changes)


async def update(instance: Tracked, run: bool, emit: bool, session: Any = None) -> None:
    """Write the changed paths of a saved ``instance``, where they still hold what it read."""
    model = type(instance)
    meta = model.__ormevents__
    current = instance._fields_document()
    changes = diff(instance._snapshot, current)
    if not changes:
        return
    before = (HookKind.BEFORE_UPDATE, HookKind.BEFORE_WRITE)
    restore = restore_point(instance, before, run)
    if run and any(meta.hooks[kind] for kind in before):  # no before-hook: the diff above stands
        for kind in before:
            await run_hooks(instance, meta.hooks[kind], instance._pending_context)
        instance._check_id(instance.id)  # a hook may have changed it
        current = instance._fields_document()
        changes = diff(instance._snapshot, current)
        if not changes:
            return
    unit = unit_for(session)
    event = instance._event("updated", current, changes) if emit else None
    key = instance._key()
    pending = unit.prepare(event, meta.collection, key, meta.retention)
    known = instance._stored or {}
    paths = write_paths(known, instance._snapshot or {}, changes.paths)
    written = {name: current[name] for name in top_fields(paths) if name in current}  # only these are converted
    update = update_document(to_bson(written), paths)
    condition = {"_id": key, **expected_filter(known, paths)}
    stored = stored_after(known, update)
    done = joined(unit, instance, run)
    outcome: list[bool] = []

    def updated(result: Any) -> bool:
        if result.matched_count == 0:
            return False
        instance._mark_persisted(current, changes if result.modified_count else EMPTY, stored)
        outcome.append(bool(result.modified_count))
        return outcome[0]  # an event only for a write that modified the document

    _, publish_error = await unit.update(meta.collection, condition, update, updated, pending, event,
                                         f"update of {model.__name__} {instance.id}")
    if not outcome:
        restore()
        raise await refusal(unit, instance, paths)
    if outcome[0]:
        after = (HookKind.AFTER_UPDATE, HookKind.AFTER_WRITE) if run else ()
        await finish(instance, after, changes, current, publish_error)
        await done(current, changes)


async def delete(instance: Tracked, run: bool, emit: bool, session: Any = None) -> None:
    """Delete a saved ``instance`` if every field still holds what it read; emit ``deleted``."""
    model = type(instance)
    meta = model.__ormevents__
    last_state = instance._snapshot or {}
    removal = diff(last_state, None)
    restore = restore_point(instance, (HookKind.BEFORE_DELETE,), run)
    if run:
        await run_hooks(instance, meta.hooks[HookKind.BEFORE_DELETE], lambda: ChangeContext(removal, {}))
        instance._check_id(instance.id)  # a hook may have changed it
    unit = unit_for(session)
    event = instance._event("deleted", last_state, removal) if emit else None
    pending = unit.prepare(event, EVENTS_COLLECTION, None, meta.retention)
    expected = tuple(last_state)
    key = instance._key()
    condition = {"_id": key, **expected_filter(instance._stored or {}, expected)}
    done = joined(unit, instance, run)

    def deleted(result: Any) -> bool:
        if result.deleted_count == 0:
            return False
        instance._deleted = True
        instance._saved_changes = removal
        return True

    _, publish_error = await unit.delete(meta.collection, condition, key, deleted, pending, event,
                                         f"delete of {model.__name__} {instance.id}")
    if not instance._deleted:
        restore()
        raise await refusal(unit, instance, expected)
    await finish(instance, (HookKind.AFTER_DELETE,) if run else (), removal, {}, publish_error)
    await done(None, removal)


async def emit(instance: Tracked, event: Event, delay: float | None, eta: Any, session: Any = None) -> None:
    """Record and hand off a custom ``event`` of ``instance`` (``delay``/``eta``: when it is due).

    With the outbox, the event is recorded in ``_oe_events`` (in the transaction, if there is
    one) and handed off after the commit; otherwise it is published now (after the commit,
    inside a transaction).
    """
    due = due_time(delay, eta)
    unit = unit_for(session)
    model = type(instance)
    pending = unit.prepare(event, EVENTS_COLLECTION, None, model.__ormevents__.retention)
    if pending is None:
        if unit.transactional:
            unit.events.append(PublishedEvent(event, delay, eta))
        else:
            await unit.publisher.publish(event, delay=delay, eta=eta)
        return
    if due is not None:
        pending = replace(pending, due=due, delay=delay)
    _, publish_error = await unit.record(pending, model.__ormevents__.collection, to_bson(instance.id), event,
                                         f"event {event.name} of {model.__name__} {instance.id}")
    if publish_error is not None:
        raise publish_error
