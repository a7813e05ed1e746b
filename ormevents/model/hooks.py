"""Lifecycle hook decorators and the code that runs them.

Nine decorators mark model methods (sync or ``async``) to run around writes::

    class User(EventModel):
        @before_write
        def normalise(self) -> None:
            self.email = self.email.lower()

        @after_update(when="status", changes_to="active")
        async def welcome(self) -> None: ...

Firing order per write (hooks of one kind run in definition order, base classes first, each
awaited before the next; a subclass method overriding a hook keeps the base's position):

| write  | hooks and the driver call, in order                               |
|--------|-------------------------------------------------------------------|
| create | before_create, before_write, [insert], after_create, after_write, after_commit |
| update | before_update, before_write, [update], after_update, after_write, after_commit |
| delete | before_delete, [delete], after_delete, after_commit                             |

Inside a transaction (:func:`ormevents.transaction`, ``save(session=...)``) everything but
``after_commit`` runs at the write; ``after_commit`` runs once per instance when the
transaction commits, and never if it aborts.

Contracts:

* inside a before-hook, ``self.changes`` is the pending :class:`~ormevents.ChangeSet`; the hook
  may change fields, and those changes are written and diffed; raising aborts the write
  (nothing written, no after-hook, no event) and the error reaches the caller unchanged. If
  the write is then refused (:class:`~ormevents.errors.ConflictError`, or the document is
  gone), the fields the before-hooks edited are put back as they were before the call;
* after-hooks run once the write is acknowledged **and its event was handed to the
  publisher**. Inside one, ``self.saved_changes`` and the condition's ChangeSet are those of
  the write it runs for, frozen: a save made by an earlier after-hook does not change them.
  Raising does not undo the write (its event is already handed off) and the error reaches
  the caller. If the hand-off failed too, the caller gets the publish error (e.g.
  :class:`~ormevents.errors.BrokerUnavailableError`: the event must be re-emitted) with the
  after-hook's error as its ``__context__`` and named in a note. A save cancelled after its
  write was sent runs no after-hooks;
* ``after_commit`` runs once the write is committed: right after the other after-hooks outside
  a transaction, when the transaction commits inside one (once per instance, however many
  times it was written). Its ChangeSet (``self.saved_changes``, and the condition's) is the
  *cumulative* change: the instance before its first write of the transaction against after
  its last (a field set and set back shows no change). Raising does not undo anything: the
  error reaches the caller (with a note that the transaction was committed);
* a condition (``when=``, ``when_any=``, ``was=``, ``is_now=``, ``changes_to=``,
  ``has_changed=``, ``condition=``) is evaluated just before its hook runs. For a before-hook
  it sees the changes earlier hooks made; for an after-hook, the write and the document as
  written. A condition naming an unknown field fails at class creation;
* a method decorated twice for one moment (``@before_update(when="a")`` over
  ``@before_update(when="b")``) runs at most once at that moment, when either condition holds
  (as in django-lifecycle); decorators of different moments each run it at their moment.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, Unpack, cast, overload

from pydantic import BaseModel

from ..changes.conditions import (
    AnyOf,
    ChangeContext,
    Condition,
    ConditionKeywords,
    build_condition,
    check_paths,
)

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__ormevents_hooks__"


class HookKind(enum.StrEnum):
    """The nine moments a hook can run at."""

    BEFORE_CREATE = "before_create"
    AFTER_CREATE = "after_create"
    BEFORE_UPDATE = "before_update"
    AFTER_UPDATE = "after_update"
    BEFORE_WRITE = "before_write"
    AFTER_WRITE = "after_write"
    BEFORE_DELETE = "before_delete"
    AFTER_DELETE = "after_delete"
    AFTER_COMMIT = "after_commit"


@dataclass(frozen=True)
class HookSpec:
    """What a decorator recorded on a function: when it runs and under which condition."""

    kind: HookKind
    condition: Condition | None


@dataclass(frozen=True)
class BoundHook:
    """A hook collected on a model class."""

    name: str
    function: Callable[..., Any]
    condition: Condition | None


HookTable = Mapping[HookKind, tuple[BoundHook, ...]]


class HookDecorator(Protocol):
    """A hook decorator: bare (``@after_update``) or with condition keywords (``@after_update(when="status")``)."""

    @overload
    def __call__(self, func: F, /) -> F: ...

    @overload
    def __call__(self, /, **conditions: Unpack[ConditionKeywords]) -> Callable[[F], F]: ...


def _decorator(kind: HookKind) -> HookDecorator:
    def decorate(func: F | None = None, /, **conditions: Unpack[ConditionKeywords]) -> F | Callable[[F], F]:
        spec = HookSpec(kind, build_condition(**conditions))

        def mark(function: F) -> F:
            if not callable(function):
                raise TypeError(f"@{kind.value} decorates a method, got {function!r}")
            setattr(function, _MARK, (*getattr(function, _MARK, ()), spec))
            return function

        return mark(func) if func is not None else mark

    decorate.__name__ = kind.value
    decorate.__doc__ = f"Run the decorated method at ``{kind.value}`` (see :mod:`ormevents.hooks`)."
    return cast(HookDecorator, decorate)


before_create = _decorator(HookKind.BEFORE_CREATE)
"""Run the decorated method before a new document is inserted."""
after_create = _decorator(HookKind.AFTER_CREATE)
"""Run the decorated method after a new document was inserted."""
before_update = _decorator(HookKind.BEFORE_UPDATE)
"""Run the decorated method before the changes of a saved document are written."""
after_update = _decorator(HookKind.AFTER_UPDATE)
"""Run the decorated method after the changes of a saved document were written."""
before_write = _decorator(HookKind.BEFORE_WRITE)
"""Run the decorated method before any insert or update (after ``before_create``/``before_update``)."""
after_write = _decorator(HookKind.AFTER_WRITE)
"""Run the decorated method after any insert or update (after ``after_create``/``after_update``)."""
before_delete = _decorator(HookKind.BEFORE_DELETE)
"""Run the decorated method before the document is deleted."""
after_delete = _decorator(HookKind.AFTER_DELETE)
"""Run the decorated method after the document was deleted."""
after_commit = _decorator(HookKind.AFTER_COMMIT)
"""Run the decorated method once its writes are committed (at the end of a transaction), on the
cumulative ChangeSet of the instance's writes."""


def collect_hooks(model: type[BaseModel]) -> HookTable:
    """The hooks of ``model`` by kind: definition order, base classes first.

    Raises :class:`~ormevents.errors.ModelDefinitionError` if a condition names a field the
    model does not have.
    """
    by_name: dict[str, tuple[Callable[..., Any], tuple[HookSpec, ...]]] = {}
    for klass in reversed(model.__mro__):
        for name, attribute in vars(klass).items():
            specs = getattr(attribute, _MARK, None) if callable(attribute) else None
            if specs:
                by_name[name] = (attribute, specs)
            elif name in by_name:
                del by_name[name]  # overridden by a method that is not a hook
    table: dict[HookKind, list[BoundHook]] = {kind: [] for kind in HookKind}
    for name, (function, specs) in by_name.items():
        for spec in specs:
            check_paths(spec.condition, model, f"{model.__name__}.{name} (@{spec.kind.value})")
        for kind in dict.fromkeys(spec.kind for spec in reversed(specs)):  # outermost decorator's order
            table[kind].append(BoundHook(name, function, _either([s.condition for s in specs if s.kind is kind])))
    return {kind: tuple(hooks) for kind, hooks in table.items()}


def _either(conditions: list[Condition | None]) -> Condition | None:
    """One condition for a method decorated more than once for the same moment: it runs once
    when any of them holds (``None``, no condition, always holds)."""
    if any(condition is None for condition in conditions):
        return None
    return conditions[0] if len(conditions) == 1 else AnyOf(tuple(c for c in conditions if c is not None))


async def run_hooks(
    instance: Any, hooks: tuple[BoundHook, ...], context: Callable[[], ChangeContext]
) -> None:
    """Run ``hooks`` on ``instance`` one after another; ``context()`` gives the current changes."""
    for hook in hooks:
        if hook.condition is not None and not hook.condition(context()):
            continue
        result = hook.function(instance)
        if inspect.isawaitable(result):
            await result
