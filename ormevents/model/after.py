"""What follows a model write: after-hooks, ``after_commit`` hooks, refusals, restore points.

* :func:`finish` runs the after-hooks of one write, each seeing the frozen ChangeSet of its own
  write. A publish error (inline publishers only: the outbox never raises one) is raised after
  them; if an after-hook raised too, its error is the publish error's ``__context__`` and is
  named in a note, so neither is lost.
* :func:`commit_work` builds the ``after_commit`` work of an instance: its hooks see the
  *cumulative* ChangeSet of every write of that instance in the unit (the state before its
  first write against the state after its last), once the unit committed.
* :func:`refusal` tells a deleted document (:class:`DocumentNotFoundError`) from a changed one
  (:class:`ConflictError` naming the paths) when a conditional write matched nothing.
* :func:`restore_point` and :func:`tracking_restore` put an instance back as it was: its fields
  (a refused write), or its tracking state (an aborted transaction).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ..changes.conditions import ChangeContext
from ..changes.diff import ChangeSet, diff
from ..delivery.outbox.records import HIDDEN_PROJECTION
from ..errors import ConflictError, DocumentNotFoundError
from .compare_and_set import conflicting_paths, stored_form
from .context import running_after_hooks
from .hooks import HookKind, run_hooks
from .storage import Touched, Unit
from .tracked import Tracked


async def finish(instance: Tracked, kinds: tuple[HookKind, ...], changes: ChangeSet,
                 document: Mapping[str, Any], publish_error: BaseException | None) -> None:
    """Run the after-hooks of one write, then raise its publish error if there was one."""
    table = type(instance).__ormevents__.hooks
    frozen = ChangeContext(changes, document)
    with running_after_hooks(instance, changes):  # per task: a save inside a hook ends its own block
        for kind in kinds:
            for hook in table[kind]:
                try:
                    await run_hooks(instance, (hook,), lambda: frozen)
                except Exception as hook_error:
                    if publish_error is None:
                        raise
                    publish_error.add_note(f"{kind.value} hook {type(instance).__name__}.{hook.name} also raised "
                                           f"{hook_error!r}; the write stands")
                    publish_error.__suppress_context__ = False  # show the hook's error in the traceback too
                    raise publish_error  # inside this except: its __context__ becomes hook_error
    if publish_error is not None:
        raise publish_error


Done = Callable[[Mapping[str, Any] | None, ChangeSet], Awaitable[None]]


def joined(unit: Unit, instance: Tracked, run: bool) -> Done:
    """Register ``instance`` with ``unit`` before its write; returns ``done(document_after,
    changes)``, to await once the write took effect (``None`` after a delete). Outside a
    transaction, ``done`` runs the ``after_commit`` hooks at once on the write's changes; inside
    one, they run on commit, on the cumulative changes."""
    if not unit.transactional:
        if not run or not type(instance).__ormevents__.hooks[HookKind.AFTER_COMMIT]:
            return _nothing
        work = commit_work(instance, run)

        async def committed(document: Mapping[str, Any] | None, changes: ChangeSet) -> None:
            await work(Touched(lambda: None, None, work, None if document is None else dict(document)), changes)

        return committed
    touched = unit.touched.get(id(instance))
    if touched is None:
        before = None if instance._snapshot is None else dict(instance._snapshot)
        touched = unit.touched[id(instance)] = Touched(tracking_restore(instance), before, commit_work(instance, run))

    async def done(document: Mapping[str, Any] | None, changes: ChangeSet) -> None:
        touched.after = None if document is None else dict(document)

    return done


async def _nothing(document: Mapping[str, Any] | None, changes: ChangeSet) -> None:
    return None


def commit_work(instance: Tracked, run: bool) -> Callable[..., Awaitable[None]]:
    """The ``after_commit`` hooks of ``instance`` on its cumulative ChangeSet (see module doc):
    ``work(touched)`` diffs its first and last state; ``work(touched, changes)`` takes the changes."""

    async def work(touched: Touched, changes: ChangeSet | None = None) -> None:
        hooks = type(instance).__ormevents__.hooks[HookKind.AFTER_COMMIT]
        if not run or not hooks:
            return
        changes = diff(touched.before, touched.after) if changes is None else changes
        if not changes:
            return
        frozen = ChangeContext(changes, touched.after or {})
        with running_after_hooks(instance, changes):
            await run_hooks(instance, hooks, lambda: frozen)

    return work


async def refusal(unit: Unit, instance: Tracked, paths: Iterable[str]) -> Exception:
    """Why a conditional write of ``instance`` matched nothing: gone, or changed at ``paths``."""
    model = type(instance)
    paths = tuple(paths)
    collection = unit.database[model.__ormevents__.collection]
    now = await unit.call(collection.find_one, {"_id": instance._key()}, HIDDEN_PROJECTION,
                          what=f"reading {model.__name__} {instance.id}")
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


def restore_point(instance: Tracked, hooks: Iterable[HookKind], run: bool) -> Callable[[], None]:
    """A function putting ``instance``'s fields back as they are now (before-hooks may edit them)."""
    table = type(instance).__ormevents__.hooks
    if not run or not any(table[kind] for kind in hooks):
        return lambda: None
    fields = type(instance).__pydantic_fields__
    saved = copy.deepcopy({name: instance.__dict__[name] for name in fields})
    fields_set = set(instance.__pydantic_fields_set__)

    def restore() -> None:
        instance.__dict__.update(saved)
        instance.__pydantic_fields_set__ = fields_set

    return restore


def tracking_restore(instance: Tracked) -> Callable[[], None]:
    """A function putting ``instance``'s tracking state (snapshot, stored form, deleted flag) back
    as it is now: after an aborted transaction, its changes show as pending again."""
    saved = (instance._snapshot, instance._saved_changes, instance._stored_id, instance._stored, instance._deleted)

    def restore() -> None:
        (instance._snapshot, instance._saved_changes, instance._stored_id, instance._stored,
         instance._deleted) = saved

    return restore
