"""MongoDB update operators, validated and applied to a plain document (pure, no I/O).

Bulk and query writes (``update_many``, ``update_one``, ``find_one_and_update``) take a MongoDB
update spec. :func:`parse_update` checks it before anything is written: only the operators below,
field paths the model declares (``known(path)``), values each operator can take; anything else
raises :class:`~ormevents.errors.InvalidUpdateError` naming the problem. :func:`apply` computes
the document after the update, as MongoDB would store it, so the write can send that state
(``$set``/``$unset`` of the changed paths, compare-and-set on their old values) and the event
carries its exact diff.

| operator       | takes                                                                          |
|----------------|--------------------------------------------------------------------------------|
| ``$set``       | ``{path: value}``                                                              |
| ``$unset``     | ``{path: ""}`` (any value)                                                     |
| ``$inc``       | ``{path: number}``; a missing field starts at 0                                |
| ``$push``      | ``{path: value}`` or ``{path: {"$each": [...], "$position": n, "$slice": n}}`` |
| ``$addToSet``  | ``{path: value}`` or ``{path: {"$each": [...]}}``                              |
| ``$pull``      | ``{path: value}``, ``{path: {"$in": [...]}}``, or ``{path: {field: value}}``   |
|                | (removes array items equal to the value / in the list / whose fields match)    |
| ``$rename``    | ``{path: "new.path"}``                                                         |
| ``$currentDate`` | ``{path: True}`` or ``{path: {"$type": "date"}}`` (the time of the call, ms) |

Example::

    >>> spec = parse_update({"$inc": {"n": 2}, "$push": {"tags": "x"}}, lambda path: True)
    >>> spec.paths
    ('n', 'tags')
    >>> apply({"tags": []}, spec, None)
    {'tags': ['x'], 'n': 2}
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InvalidUpdateError
from .diff import lookup, values_equal
from .paths import assign_path, remove_path

OPERATORS = ("$set", "$unset", "$inc", "$push", "$addToSet", "$pull", "$rename", "$currentDate")
_MISSING: Any = object()


@dataclass(frozen=True)
class UpdateSpec:
    """A validated update: ``(operator, path, argument)`` steps in the order given, and the field
    paths it touches (``$rename``: both names), in that order."""

    steps: tuple[tuple[str, str, Any], ...]
    paths: tuple[str, ...]
    raw: Mapping[str, Any]


def parse_update(update: Any, known: Callable[[str], bool]) -> UpdateSpec:
    """Validate ``update`` (see module doc); ``known(path)`` says whether the model has ``path``."""
    if not isinstance(update, Mapping) or not update:
        raise InvalidUpdateError(f"an update is a non-empty dict of operators such as {{'$set': {{...}}}}, "
                                 f"got {update!r}")
    steps: list[tuple[str, str, Any]] = []
    paths: list[str] = []
    for operator, arguments in update.items():
        if operator not in OPERATORS:
            hint = " (a plain field: wrap it as {'$set': {...}})" if not str(operator).startswith("$") else ""
            raise InvalidUpdateError(f"update operator {operator!r} is not supported{hint}; "
                                     f"supported: {', '.join(OPERATORS)}")
        if not isinstance(arguments, Mapping) or not arguments:
            raise InvalidUpdateError(f"{operator} takes a non-empty dict of field paths, got {arguments!r}")
        for path, argument in arguments.items():
            targets = [path, argument] if operator == "$rename" else [path]
            for target in targets:
                _check_path(operator, target, known)
            _check_argument(operator, path, argument)
            for target in targets:
                if any(target == p or target.startswith(p + ".") or p.startswith(target + ".") for p in paths):
                    raise InvalidUpdateError(f"{operator} {target!r} conflicts with another path of the same "
                                             "update; MongoDB refuses two operators on one path")
                paths.append(target)
            steps.append((operator, path, argument))
    return UpdateSpec(tuple(steps), tuple(paths), update)


def check_stored(stored: Mapping[str, Any], spec: UpdateSpec) -> None:
    """Raise :class:`InvalidUpdateError` where MongoDB refuses ``spec`` for the document as
    ``stored`` (a field stored as ``null``, which the model reads like a missing one: ``$inc``,
    ``$push``, ``$addToSet`` and ``$pull`` of it)."""
    for operator, path, _ in spec.steps:
        if operator in ("$inc", "$push", "$addToSet", "$pull") and lookup(stored, path, _MISSING) is None:
            kind = "a number" if operator == "$inc" else "an array"
            raise InvalidUpdateError(f"{operator} {path!r}: the stored value is null, not {kind}; MongoDB refuses "
                                     "the update (set the field first)")


def apply(document: Mapping[str, Any], spec: UpdateSpec, now: datetime | None) -> dict[str, Any]:
    """The document after ``spec`` (a new dict; ``document`` is not changed). ``now`` is the
    time ``$currentDate`` writes. Raises :class:`InvalidUpdateError` where MongoDB would refuse
    the update for this document (``$inc`` of a string, ``$push`` to a non-array...); a
    ``None`` counts as missing (see :func:`check_stored` for a stored ``null``)."""
    result = copy.deepcopy(dict(document))
    for operator, path, argument in spec.steps:
        current = lookup(result, path, _MISSING)
        if operator == "$set":
            assign_path(result, path, copy.deepcopy(argument))
        elif operator == "$unset":
            remove_path(result, path)
        elif operator == "$inc":
            if not _absent(current) and not _number(current):
                raise InvalidUpdateError(f"$inc {path!r}: the stored value {current!r} is not a number")
            total = argument if _absent(current) else current + argument
            if isinstance(total, int) and not -(2**63) <= total < 2**63:
                raise InvalidUpdateError(f"$inc {path!r}: {current!r} + {argument!r} does not fit MongoDB's "
                                         "64-bit integers")
            assign_path(result, path, total)
        elif operator == "$currentDate":
            assign_path(result, path, now)
        elif operator == "$rename":
            if current is not _MISSING:
                remove_path(result, path)
                assign_path(result, argument, current)
        elif not (operator == "$pull" and _absent(current)):  # $pull of a missing field: a no-op
            assign_path(result, path, _array_op(operator, path, _array(operator, path, current), argument))
    return result


def _array_op(operator: str, path: str, items: list[Any], argument: Any) -> list[Any]:
    if operator == "$pull":
        return [item for item in items if not _pull_matches(item, argument)]
    each = argument["$each"] if isinstance(argument, Mapping) and "$each" in argument else [argument]
    each = copy.deepcopy(list(each))
    if operator == "$addToSet":
        for value in each:
            if not any(_equal(value, item) for item in items):
                items.append(value)
        return items
    position = argument.get("$position") if isinstance(argument, Mapping) and "$each" in argument else None
    if position is None:
        items.extend(each)
    else:
        index = position if position >= 0 else max(len(items) + position, 0)
        items[index:index] = each
    limit = argument.get("$slice") if isinstance(argument, Mapping) and "$each" in argument else None
    if limit is not None:
        items = items[:limit] if limit >= 0 else items[len(items) + limit:] if -limit < len(items) else items
    return items


def _pull_matches(item: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping) and set(condition) == {"$in"}:
        return any(_equal(item, value) for value in condition["$in"])
    if isinstance(condition, Mapping) and isinstance(item, Mapping) and condition:
        return all(key in item and _field_matches(item[key], value) for key, value in condition.items())
    return _equal(item, condition)


def _field_matches(value: Any, condition: Any) -> bool:
    """A query's ``{field: condition}`` on one value: equal, or an array holding an equal item."""
    return _equal(value, condition) or (isinstance(value, list) and any(_equal(item, condition) for item in value))


def _equal(a: Any, b: Any) -> bool:
    """MongoDB's equality of stored values: numbers by value (``1 == 1.0``), the rest as
    :func:`~ormevents.changes.diff.values_equal`."""
    if _number(a) and _number(b):
        return bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return list(a) == list(b) and all(_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return values_equal(a, b)


def _array(operator: str, path: str, current: Any) -> list[Any]:
    if _absent(current):
        return []
    if not isinstance(current, list):
        raise InvalidUpdateError(f"{operator} {path!r}: the stored value {current!r} is not an array")
    return list(current)


def _check_path(operator: str, path: Any, known: Callable[[str], bool]) -> None:
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise InvalidUpdateError(f"{operator}: {path!r} is not a field path")
    if any(part.startswith("$") for part in path.split(".")):
        raise InvalidUpdateError(f"{operator} {path!r}: positional paths ($, $[], $[name]) are not supported; "
                                 "name the array index or update the whole array")
    if path.split(".")[0] in ("_id", "id") or path.startswith("_oe_"):
        raise InvalidUpdateError(f"{operator} {path!r}: the id and ormevents' own fields cannot be updated")
    if not known(path):
        raise InvalidUpdateError(f"{operator} {path!r}: the model declares no such field")


def _check_argument(operator: str, path: str, argument: Any) -> None:
    if operator == "$inc" and not _number(argument):
        raise InvalidUpdateError(f"$inc {path!r} takes a number, got {argument!r}")
    if operator == "$currentDate" and argument is not True and argument != {"$type": "date"}:
        raise InvalidUpdateError(f"$currentDate {path!r} takes True or {{'$type': 'date'}}, got {argument!r}")
    if operator in ("$push", "$addToSet") and isinstance(argument, Mapping) and "$each" in argument:
        allowed = {"$each", "$position", "$slice"} if operator == "$push" else {"$each"}
        extra = set(argument) - allowed
        if extra or not isinstance(argument["$each"], list):
            raise InvalidUpdateError(f"{operator} {path!r}: takes $each (a list)"
                                     f"{', $position and $slice (ints)' if operator == '$push' else ''}; "
                                     f"got {argument!r}")
        if any(not isinstance(argument.get(key, 0), int) for key in ("$position", "$slice")):
            raise InvalidUpdateError(f"{operator} {path!r}: $position and $slice take ints, got {argument!r}")
    if operator == "$pull" and isinstance(argument, Mapping):
        listed = argument["$in"] if set(argument) == {"$in"} else None
        if (_query_keys(argument) if listed is None else not isinstance(listed, list) or _query_keys(listed)):
            raise InvalidUpdateError(f"$pull {path!r}: only a value, {{'$in': [...]}} or {{field: value}} (plain "
                                     f"field names, no query operators or dotted names) is supported, got "
                                     f"{argument!r}")


def _absent(value: Any) -> bool:
    return value is _MISSING or value is None


def _query_keys(value: Any) -> bool:
    """Whether ``value`` holds, at any depth, a key MongoDB reads as a query (``$...`` or dotted)."""
    if isinstance(value, Mapping):
        return any(str(key).startswith("$") or "." in str(key) or _query_keys(item) for key, item in value.items())
    return isinstance(value, list) and any(_query_keys(item) for item in value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
