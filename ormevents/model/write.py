"""The write step of :class:`~ormevents.model.base.EventModel`: conditional driver calls, a hand-off
that cancellation cannot split from its write, and after-hooks.

* **Conditional writes.** Updates and deletes carry the compare-and-set conditions of
  :mod:`ormevents.model.compare_and_set`: they apply only if the paths they change (for a delete,
  every field) still hold what this instance last read or wrote. When nothing matched,
  :func:`refusal` tells a deleted document (:class:`DocumentNotFoundError`) from a changed one
  (:class:`ConflictError` naming the paths).
* **Cancellation.** :func:`send_and_hand_off` runs the driver call and the publish of its event
  as one inner task. If the caller is cancelled once the write is sent, the task still
  finishes (the write and its event belong together); the cancellation is re-raised after it.
* **After-hooks.** :func:`finish` runs them after the hand-off, each seeing the frozen
  ChangeSet of its own write. A publish error is raised after them; if an after-hook raised
  too, its error is the publish error's ``__context__`` and is named in a note, so neither
  is lost and ``except BrokerUnavailableError`` still catches the case that needs a re-emit.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..changes.conditions import ChangeContext
from ..changes.diff import EMPTY, ChangeSet, diff, update_document
from ..errors import ConflictError, DocumentNotFoundError
from ..events.event import Event
from ..runtime import get_runtime
from .compare_and_set import (
    conflicting_paths,
    expected_filter,
    stored_after,
    stored_form,
)
from .hooks import HookKind, run_hooks
from .storage import to_bson
from .types import new_id

if TYPE_CHECKING:
    from .base import EventModel

logger = logging.getLogger("ormevents.model.write")


async def insert(instance: EventModel, run: bool, emit: bool) -> None:
    """Insert a new ``instance`` (``run``: with hooks; ``emit``: with its ``created`` event)."""
    model = type(instance)
    hooks = model.__ormevents__.hooks
    if instance.id is None:
        instance.id = new_id(model.__name__, model.model_fields["id"].annotation)
    if run:
        for kind in (HookKind.BEFORE_CREATE, HookKind.BEFORE_WRITE):
            await run_hooks(instance, hooks[kind], instance._pending_context)
    current = instance._fields_document()
    changes = diff(None, current)
    event = instance._event("created", current, changes) if emit else None  # fails before writing if unserializable
    document = to_bson({"_id": instance.id, **current})
    stored = stored_after({}, {"$set": {k: v for k, v in document.items() if k != "_id"}})
    collection = get_runtime().collection(model.__ormevents__.collection)

    def inserted(result: Any) -> bool:
        instance._mark_persisted(current, changes, stored)
        return True

    _, publish_error = await send_and_hand_off(lambda: collection.insert_one(document), inserted, event)
    await finish(instance, (HookKind.AFTER_CREATE, HookKind.AFTER_WRITE) if run else (), changes, current, publish_error)


async def update(instance: EventModel, run: bool, emit: bool) -> None:
    """Write the changed paths of a saved ``instance``, where they still hold what it read."""
    model = type(instance)
    hooks = model.__ormevents__.hooks
    if not instance.changes:
        return
    restore = restore_point(instance, (HookKind.BEFORE_UPDATE, HookKind.BEFORE_WRITE), run)
    if run:
        for kind in (HookKind.BEFORE_UPDATE, HookKind.BEFORE_WRITE):
            await run_hooks(instance, hooks[kind], instance._pending_context)
        instance._check_id(instance.id)  # a hook may have changed it
    current = instance._fields_document()
    changes = diff(instance._snapshot, current)
    if not changes:
        return
    event = instance._event("updated", current, changes) if emit else None
    update = update_document(to_bson(current), changes)
    known = instance._stored or {}
    condition = {"_id": instance._key(), **expected_filter(known, changes.paths)}
    stored = stored_after(known, update)
    collection = get_runtime().collection(model.__ormevents__.collection)
    outcome: list[bool] = []

    def updated(result: Any) -> bool:
        if result.matched_count == 0:
            return False
        instance._mark_persisted(current, changes if result.modified_count else EMPTY, stored)
        outcome.append(bool(result.modified_count))
        return outcome[0]  # an event only for a write that modified the document

    _, publish_error = await send_and_hand_off(lambda: collection.update_one(condition, update), updated, event)
    if not outcome:
        restore()
        raise await refusal(instance, changes.paths)
    if outcome[0]:
        after = (HookKind.AFTER_UPDATE, HookKind.AFTER_WRITE) if run else ()
        await finish(instance, after, changes, current, publish_error)


async def delete(instance: EventModel, run: bool, emit: bool) -> None:
    """Delete a saved ``instance`` if every field still holds what it read; emit ``deleted``."""
    model = type(instance)
    hooks = model.__ormevents__.hooks
    last_state = instance._snapshot or {}
    removal = diff(last_state, None)
    restore = restore_point(instance, (HookKind.BEFORE_DELETE,), run)
    if run:
        await run_hooks(instance, hooks[HookKind.BEFORE_DELETE], lambda: ChangeContext(removal, {}))
        instance._check_id(instance.id)  # a hook may have changed it
    event = instance._event("deleted", last_state, removal) if emit else None
    expected = tuple(last_state)
    condition = {"_id": instance._key(), **expected_filter(instance._stored or {}, expected)}
    collection = get_runtime().collection(model.__ormevents__.collection)

    def deleted(result: Any) -> bool:
        if result.deleted_count == 0:
            return False
        instance._deleted = True
        instance._saved_changes = removal
        return True

    _, publish_error = await send_and_hand_off(lambda: collection.delete_one(condition), deleted, event)
    if not instance._deleted:
        restore()
        raise await refusal(instance, expected)
    await finish(instance, (HookKind.AFTER_DELETE,) if run else (), removal, {}, publish_error)


async def send_and_hand_off(
    send: Callable[[], Awaitable[Any]], took_effect: Callable[[Any], bool], event: Event | None
) -> tuple[Any, BaseException | None]:
    """Send a write, and hand its event to the publisher if ``took_effect(result)``.

    Returns ``(result, publish_error)``. The two steps run as one task shielded from the
    caller's cancellation: a cancelled caller waits for it, then gets its ``CancelledError``
    (a publish error it can no longer see is logged). ``took_effect`` must not await: it
    records the write on the instance the moment the driver confirms it.
    """

    async def unit() -> tuple[Any, BaseException | None]:
        result = await send()
        if not took_effect(result) or event is None:
            return result, None
        try:
            await get_runtime().publisher.publish(event)
        except Exception as error:  # the write stands: the caller learns of it after the after-hooks
            return result, error
        logger.debug("emitted %s %s for %s", event.name, event.id, event.object_id)
        return result, None

    task = asyncio.ensure_future(unit())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError as cancelled:  # the caller's: the write may already be applied
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue  # cancelled again: still wait, one CancelledError is re-raised below
        _log_unseen(task, event)
        raise cancelled


def _log_unseen(task: asyncio.Future[tuple[Any, BaseException | None]], event: Event | None) -> None:
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


async def refusal(instance: EventModel, paths: Iterable[str]) -> Exception:
    """Why a conditional write of ``instance`` matched nothing: gone, or changed at ``paths``."""
    model = type(instance)
    paths = tuple(paths)
    now = await get_runtime().collection(model.__ormevents__.collection).find_one({"_id": instance._key()})
    if now is None:
        return DocumentNotFoundError(f"{model.__name__} {instance.id} is no longer in the database; nothing was written")
    stored = instance._stored if instance._stored is not None else {}
    changed = conflicting_paths(stored_form(now), stored, paths) or paths
    return ConflictError(
        f"{model.__name__} {instance.id}: {', '.join(changed)} changed in the database since this instance "
        "read it; nothing was written. Call `await doc.reload()`, apply your change again and save "
        "(see 'Concurrent writes' in docs/models.md)",
        instance.id, changed,
    )


def restore_point(instance: EventModel, hooks: Iterable[HookKind], run: bool) -> Callable[[], None]:
    """A function putting ``instance``'s fields back as they are now (before-hooks may edit them)."""
    table = type(instance).__ormevents__.hooks
    if not run or not any(table[kind] for kind in hooks):
        return lambda: None
    saved = copy.deepcopy({name: instance.__dict__[name] for name in type(instance).model_fields})
    fields_set = set(instance.__pydantic_fields_set__)

    def restore() -> None:
        instance.__dict__.update(saved)
        instance.__pydantic_fields_set__ = fields_set

    return restore


async def finish(instance: EventModel, kinds: tuple[HookKind, ...], changes: ChangeSet,
                 document: Mapping[str, Any], publish_error: BaseException | None) -> None:
    """Run the after-hooks of one write, then raise its publish error if there was one."""
    table = type(instance).__ormevents__.hooks
    frozen = ChangeContext(changes, document)
    outer = (instance._in_after_hooks, instance._hook_changes)  # a save made inside an after-hook
    instance._in_after_hooks = True
    try:
        for kind in kinds:
            for hook in table[kind]:
                instance._hook_changes = changes  # a save inside an earlier hook must not show through
                try:
                    await run_hooks(instance, (hook,), lambda: frozen)
                except Exception as hook_error:
                    if publish_error is None:
                        raise
                    publish_error.add_note(f"{kind.value} hook {type(instance).__name__}.{hook.name} also raised "
                                           f"{hook_error!r}; the write stands")
                    publish_error.__suppress_context__ = False  # show the hook's error in the traceback too
                    raise publish_error  # inside this except: its __context__ becomes hook_error
    finally:
        instance._in_after_hooks, instance._hook_changes = outer
    if publish_error is not None:
        raise publish_error
