"""Sensitive fields: the fact of a change is kept, the values become ``"[REDACTED]"`` (pure).

Mark a field with ``Annotated[str, Sensitive()]`` or list it in the model config::

    class User(EventModel):
        model_config = EventModelConfig(sensitive_fields=("password_hash",))
        api_key: Annotated[str, Sensitive()]

Nested models, dataclasses and TypedDicts are searched at any depth, through every container the annotations name:
``Address | None``, ``list[Contact]``, ``dict[str, Contact]``, ``tuple[A, B]``, unions,
``Annotated`` items (``list[Annotated[str, Sensitive()]]``) and combinations of them. Sensitive
paths are dotted patterns where ``*`` stands for any list index or dict key
(``contacts.*.phone``). Redaction applies to event ``data`` and ``changes``, to ``repr()`` of
model instances and to everything ormevents logs; the failed-job records, status records and
CLI output only ever hold redacted events.

Example::

    >>> redact_document({"contacts": [{"name": "a", "phone": "1"}]}, frozenset({"contacts.*.phone"}))
    {'contacts': [{'name': 'a', 'phone': '[REDACTED]'}]}
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel
from typing_extensions import (
    is_typeddict,  # also knows typing_extensions' TypedDict, as pydantic does
)

from ..errors import ModelDefinitionError

REDACTED = "[REDACTED]"
_MAX_DEPTH = 8  # self-referencing models stop here
_SEQUENCES = (list, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet, abc.Iterable,
              abc.Collection)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


@dataclass(frozen=True)
class Sensitive:
    """Marker for ``Annotated[T, Sensitive()]``: the field's values never leave redacted."""


def sensitive_paths(model: type[BaseModel], prefix: str = "", depth: int = 0) -> frozenset[str]:
    """Dotted path patterns of every sensitive field of ``model``, in nested models at any depth
    and inside containers (``*`` = any list index or dict key)."""
    configured: tuple[str, ...] = tuple(dict(model.model_config).get("sensitive_fields", ()))  # type: ignore[arg-type]  # our own config key, typed in EventModelConfig
    paths: set[str] = {prefix + name for name in configured}
    for name, info in model.model_fields.items():
        if any(isinstance(meta, Sensitive) for meta in info.metadata):
            paths.add(prefix + name)
        else:
            paths |= _in_annotation(info.annotation, f"{prefix}{name}", depth)
    return frozenset(paths)


def _in_annotation(annotation: Any, path: str, depth: int) -> set[str]:
    """Sensitive patterns at or below ``path`` for a value annotated ``annotation``."""
    if depth >= _MAX_DEPTH:
        return set()
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        if any(isinstance(meta, Sensitive) for meta in args[1:]):
            return {path}
        return _in_annotation(args[0], path, depth)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return set(sensitive_paths(annotation, path + ".", depth + 1))
    members = _members(annotation)
    if members is not None:
        return {found for name, hint in members.items() for found in _in_annotation(hint, f"{path}.{name}", depth + 1)}
    found: set[str] = set()
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found |= _in_annotation(arg, path, depth)
    elif origin is tuple and args and args[-1] is not Ellipsis:
        for index, arg in enumerate(args):
            found |= _in_annotation(arg, f"{path}.{index}", depth)
    elif origin is tuple or origin in _SEQUENCES:
        found |= _in_annotation(args[0], f"{path}.*", depth) if args else set()
    elif origin in _MAPPINGS and len(args) == 2:
        found |= _in_annotation(args[1], f"{path}.*", depth)
    return found


def _members(annotation: Any) -> dict[str, Any] | None:
    """Field name -> annotation (extras kept) of a dataclass or TypedDict, else ``None``."""
    if not isinstance(annotation, type) or not (dataclasses.is_dataclass(annotation) or is_typeddict(annotation)):
        return None
    fields = getattr(annotation, "__pydantic_fields__", None)
    if fields is not None:  # a pydantic dataclass: resolved annotations, Sensitive in the metadata
        return {name: Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
                for name, info in fields.items()}
    try:
        return typing.get_type_hints(annotation, include_extras=True)
    except Exception as exc:  # an unresolvable name: refuse rather than leak what it hides
        raise ModelDefinitionError(
            f"cannot read the annotations of {annotation.__qualname__} to find its Sensitive fields: {exc}"
        ) from None


def is_sensitive(path: str, sensitive: frozenset[str]) -> bool:
    """True if ``path`` matches a sensitive pattern or lies below one."""
    parts = tuple(path.split("."))
    return any(_covers(tuple(pattern.split(".")), parts) for pattern in sensitive)


def redact_document(document: Mapping[str, Any], sensitive: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """A copy of ``document`` with the values at sensitive paths replaced by ``REDACTED``."""
    if not sensitive:
        return dict(document)
    patterns = [tuple(pattern.split(".")) for pattern in sensitive]
    start = tuple(prefix.rstrip(".").split(".")) if prefix else ()
    return {key: _redact(value, (*start, key), patterns) for key, value in document.items()}


def redact_value(path: str, value: Any, sensitive: frozenset[str]) -> Any:
    """``value`` as an event may show it at ``path`` (redacted whole or in part)."""
    if not sensitive:
        return value
    return _redact(value, tuple(path.split(".")), [tuple(pattern.split(".")) for pattern in sensitive])


def redact_changes(model: type[BaseModel], changes: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{path: (old, new)}`` of ``changes`` as events show them for ``model`` (sensitive values redacted).

    Use it to log or print a model's ``changes`` / ``saved_changes`` safely.
    """
    sensitive = sensitive_paths(model)
    return {
        path: (redact_value(path, old, sensitive), redact_value(path, new, sensitive))
        for path, (old, new) in changes.items()
    }


def _redact(value: Any, path: tuple[str, ...], patterns: list[tuple[str, ...]]) -> Any:
    if any(_covers(pattern, path) for pattern in patterns):
        return REDACTED
    below = [pattern for pattern in patterns if len(pattern) > len(path) and _covers(pattern[: len(path)], path)]
    if not below:
        return value
    if isinstance(value, Mapping):
        return {key: _redact(item, (*path, str(key)), below) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_redact(item, (*path, str(index)), below) for index, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


def _covers(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """True if ``path`` is ``pattern`` or below it (``*`` matches any one segment)."""
    return len(pattern) <= len(path) and all(p == "*" or p == s for p, s in zip(pattern, path))
