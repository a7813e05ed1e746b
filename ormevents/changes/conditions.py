"""Conditions on a change: small values that compose with ``&``, ``|`` and ``~`` (pure).

Hooks (``@after_update(when="status", changes_to="active")``) and handlers
(``@event_handler("user.updated", when="status")``) share them. A condition is evaluated
against a :class:`ChangeContext`: the :class:`~ormevents.changes.diff.ChangeSet` of the write and
the document after it (the document before it is derived from the two).

Example::

    >>> from ormevents.changes.diff import diff
    >>> ctx = ChangeContext.of({"status": "new"}, {"status": "active"})
    >>> (Changed("status") & IsNow("status", "active"))(ctx)
    True
    >>> (~Was("status", "new"))(ctx)
    False
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from pydantic import BaseModel

from ..errors import IncompleteEventError, ModelDefinitionError
from ..events.schema import nested_model_type
from .diff import ChangeSet, diff, lookup
from .paths import assign_path


class _AnyValue:
    """Sentinel for "no constraint" (``None`` is a legitimate value to test for)."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Final = _AnyValue()


@dataclass(frozen=True)
class ChangeContext:
    """What a condition sees: the changes of one write and the document after it."""

    changes: ChangeSet
    current: Mapping[str, Any]
    _previous: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    partial: str | None = None
    """The event name of an ``updated`` event, whose ``current`` holds only the fields it carries:
    reading another field's value raises :class:`~ormevents.errors.IncompleteEventError`."""

    @classmethod
    def of(cls, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> ChangeContext:
        """Context for the write turning document ``before`` into ``after``."""
        return cls(diff(before, after), after)

    def value_now(self, path: str) -> Any:
        """The value at ``path`` after the write (``None`` if absent)."""
        self._check_carried(path)
        return lookup(self.current, path)

    def value_before(self, path: str) -> Any:
        """The value at ``path`` before the write (``None`` if absent)."""
        if path in self.changes:
            return self.changes[path].old
        if not self.changes.has_changed(path):
            self._check_carried(path)
            return lookup(self.current, path)
        return lookup(self._previous_document(), path)

    def _check_carried(self, path: str) -> None:
        field_name = path.split(".", 1)[0]
        if self.partial is not None and field_name not in self.current:
            raise IncompleteEventError(
                f"event {self.partial} does not carry {field_name!r} (the write did not change it): a condition "
                f"reading its value needs it in the model's event_data, e.g. "
                f"EventModelConfig(event_data=({field_name!r},))")

    def _previous_document(self) -> dict[str, Any]:
        if self._previous is None:
            previous = copy.deepcopy(dict(self.current))
            for path, change in self.changes.items():
                assign_path(previous, path, change.old)
            object.__setattr__(self, "_previous", previous)
        assert self._previous is not None
        return self._previous


class Condition:
    """Base of all conditions: callable on a :class:`ChangeContext`, composable."""

    def __call__(self, ctx: ChangeContext) -> bool:
        raise NotImplementedError

    def paths(self) -> frozenset[str]:
        """Every field path this condition reads (checked against the model at class creation)."""
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return AllOf((self, other))

    def __or__(self, other: Condition) -> Condition:
        return AnyOf((self, other))

    def __invert__(self) -> Condition:
        return Not(self)


@dataclass(frozen=True)
class _PathCondition(Condition):
    path: str

    def paths(self) -> frozenset[str]:
        return frozenset({self.path})


@dataclass(frozen=True)
class Changed(_PathCondition):
    """True when ``path`` (or something below it) changed in this write."""

    def __call__(self, ctx: ChangeContext) -> bool:
        return ctx.changes.has_changed(self.path)


@dataclass(frozen=True)
class Was(_PathCondition):
    """True when ``path`` equalled ``value`` before the write."""

    value: Any

    def __call__(self, ctx: ChangeContext) -> bool:
        return bool(ctx.value_before(self.path) == self.value)


@dataclass(frozen=True)
class IsNow(_PathCondition):
    """True when ``path`` equals ``value`` after the write (changed or not)."""

    value: Any

    def __call__(self, ctx: ChangeContext) -> bool:
        return bool(ctx.value_now(self.path) == self.value)


@dataclass(frozen=True)
class ChangesTo(_PathCondition):
    """True when ``path`` changed in this write and now equals ``value``."""

    value: Any

    def __call__(self, ctx: ChangeContext) -> bool:
        return ctx.changes.has_changed(self.path) and bool(ctx.value_now(self.path) == self.value)


@dataclass(frozen=True)
class AllOf(Condition):
    """True when every part is true."""

    parts: tuple[Condition, ...]

    def __call__(self, ctx: ChangeContext) -> bool:
        return all(part(ctx) for part in self.parts)

    def paths(self) -> frozenset[str]:
        return frozenset().union(*(part.paths() for part in self.parts))


@dataclass(frozen=True)
class AnyOf(Condition):
    """True when at least one part is true."""

    parts: tuple[Condition, ...]

    def __call__(self, ctx: ChangeContext) -> bool:
        return any(part(ctx) for part in self.parts)

    def paths(self) -> frozenset[str]:
        return frozenset().union(*(part.paths() for part in self.parts))


@dataclass(frozen=True)
class Not(Condition):
    """True when ``inner`` is false."""

    inner: Condition

    def __call__(self, ctx: ChangeContext) -> bool:
        return not self.inner(ctx)

    def paths(self) -> frozenset[str]:
        return self.inner.paths()


class ConditionKeywords(TypedDict, total=False):
    """The condition keywords hooks and handlers accept (see :func:`build_condition`)."""

    when: str | None
    when_any: list[str] | None
    was: Any
    is_now: Any
    changes_to: Any
    has_changed: bool
    condition: Condition | None


def build_condition(
    *,
    when: str | None = None,
    when_any: Iterable[str] | None = None,
    was: Any = ANY,
    is_now: Any = ANY,
    changes_to: Any = ANY,
    has_changed: bool = True,
    condition: Condition | None = None,
) -> Condition | None:
    """The condition the decorator keywords describe, or ``None`` when there is none.

    ``when="f"`` fires when field ``f`` changed (``has_changed=False`` drops that part);
    ``was``/``is_now``/``changes_to`` constrain its value before/after the write;
    ``when_any=[...]`` fires when any listed field meets the same constraints;
    ``condition=`` is and-ed with the rest.
    """
    if when is not None and when_any is not None:
        raise ModelDefinitionError("give either when= or when_any=, not both")
    fields = [when] if when is not None else list(when_any or [])
    constrained = any(v is not ANY for v in (was, is_now, changes_to))
    if constrained and not fields:
        raise ModelDefinitionError("was=, is_now= and changes_to= need when= or when_any= to name the field")
    for name in fields:
        if not isinstance(name, str) or not name:
            raise ModelDefinitionError(f"when/when_any take field names (dotted paths), got {name!r}")
    per_field: list[Condition] = []
    for name in fields:
        parts: list[Condition] = [Changed(name)] if has_changed and changes_to is ANY else []
        if was is not ANY:
            parts.append(Was(name, was))
        if is_now is not ANY:
            parts.append(IsNow(name, is_now))
        if changes_to is not ANY:
            parts.append(ChangesTo(name, changes_to))
        if parts:
            per_field.append(parts[0] if len(parts) == 1 else AllOf(tuple(parts)))
    result: Condition | None = None
    if per_field:
        result = per_field[0] if len(per_field) == 1 else AnyOf(tuple(per_field))
    if condition is not None:
        if not isinstance(condition, Condition):
            raise ModelDefinitionError(f"condition= takes a Condition (Changed, IsNow, ...), got {condition!r}")
        result = condition if result is None else AllOf((result, condition))
    return result


def check_paths(condition: Condition | None, model: type[BaseModel], where: str) -> None:
    """Raise :class:`ModelDefinitionError` if ``condition`` reads a path ``model`` lacks."""
    if condition is None:
        return
    for path in sorted(condition.paths()):
        _check_path(model, path, where)


def _check_path(model: type[BaseModel], path: str, where: str) -> None:
    current: Any = model
    for part in path.split("."):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return  # below a dict/list/Any field: keys are data, not schema
        info = current.model_fields.get(part)
        if info is None:
            known = ", ".join(sorted(current.model_fields))
            raise ModelDefinitionError(
                f"{where}: condition names unknown field {path!r} of {model.__name__} (fields: {known})"
            )
        current = nested_model_type(info.annotation)
