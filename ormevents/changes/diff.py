"""Field diffs: :class:`FieldChange`, :class:`ChangeSet` and :func:`diff` (pure, no I/O).

A diff compares two plain documents (dicts as produced by ``model_dump``) and reports every
changed leaf by dotted path:

* nested dicts/models recurse (``address.city``);
* lists of equal length compare item by item (``tags.1``, ``items.0.qty``); a list whose
  length changed is reported whole;
* a key removed from a dict is reported with ``new=None`` and written with ``$unset``;
* equality is type-aware: ``1 != True``, ``1 != 1.0``, ``Decimal("1.0") != 1``; ``datetime``
  values compare by instant (naive ones are taken as UTC).

Example::

    >>> cs = diff({"status": "inactive", "tags": ["a"]}, {"status": "active", "tags": ["a"]})
    >>> cs["status"]
    FieldChange(old='inactive', new='active')
    >>> cs.paths
    ('status',)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple


class FieldChange(NamedTuple):
    """One changed path: the persisted value before and the value after the write.

    A named tuple, so ``change == ("inactive", "active")`` holds.
    """

    old: Any
    new: Any

    def as_pair(self) -> tuple[Any, Any]:
        """``(old, new)``, the form events carry."""
        return (self.old, self.new)


class ChangeSet(Mapping[str, FieldChange]):
    """An immutable mapping ``dotted path -> FieldChange``, in document order.

    Lookups helpers accept a path or any parent of changed paths: ``has_changed("address")``
    is true when ``address.city`` changed.
    """

    __slots__ = ("_changes",)

    def __init__(self, changes: Mapping[str, FieldChange] | None = None) -> None:
        self._changes: dict[str, FieldChange] = dict(changes or {})

    def __getitem__(self, path: str) -> FieldChange:
        return self._changes[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._changes)

    def __len__(self) -> int:
        return len(self._changes)

    def __copy__(self) -> ChangeSet:
        return self  # immutable: a model's private default (EMPTY) is not copied per instance

    def __deepcopy__(self, memo: dict[int, Any]) -> ChangeSet:
        return self

    def __repr__(self) -> str:
        inner = ", ".join(f"{p!r}: ({c.old!r} -> {c.new!r})" for p, c in self._changes.items())
        return f"ChangeSet({{{inner}}})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChangeSet):
            return self._changes == other._changes
        if isinstance(other, Mapping):
            return self._changes == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._changes))

    @property
    def paths(self) -> tuple[str, ...]:
        """The changed paths, in document order."""
        return tuple(self._changes)

    @property
    def fields(self) -> tuple[str, ...]:
        """The top-level fields holding the changed paths, each once, in document order
        (``("address",)`` for ``address.city`` and ``address.zip``)."""
        return top_fields(self._changes)

    def has_changed(self, path: str) -> bool:
        """True if ``path`` itself, anything below it, or a parent of it changed."""
        return any(_related(path, changed) for changed in self._changes)

    def old(self, path: str, default: Any = None) -> Any:
        """The value ``path`` had before the write (``default`` if it did not change)."""
        change = self._changes.get(path)
        return change.old if change is not None else default

    def new(self, path: str, default: Any = None) -> Any:
        """The value ``path`` has after the write (``default`` if it did not change)."""
        change = self._changes.get(path)
        return change.new if change is not None else default

    def as_pairs(self) -> dict[str, tuple[Any, Any]]:
        """``{path: (old, new)}``, the form events carry."""
        return {path: change.as_pair() for path, change in self._changes.items()}

    def map_values(self, transform: Any) -> ChangeSet:
        """A new ChangeSet with ``transform(path, value)`` applied to each old and new value."""
        return ChangeSet(
            {p: FieldChange(transform(p, c.old), transform(p, c.new)) for p, c in self._changes.items()}
        )


EMPTY = ChangeSet()
_MISSING = object()


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> ChangeSet:
    """The :class:`ChangeSet` turning document ``old`` into ``new`` (``None`` = no document)."""
    changes: dict[str, FieldChange] = {}
    _diff_mapping(old or {}, new or {}, "", changes)
    return ChangeSet(changes)


def values_equal(a: Any, b: Any) -> bool:
    """Type-aware deep equality used by :func:`diff` (see module doc)."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _utc(a) == _utc(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def update_document(new_doc: Mapping[str, Any], changes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The MongoDB update (``$set``/``$unset`` of the changed paths only) for ``changes``
    (a :class:`ChangeSet` or its paths)."""
    to_set: dict[str, Any] = {}
    to_unset: dict[str, str] = {}
    for path in changes:
        value = lookup(new_doc, path, _MISSING)
        if value is _MISSING:
            to_unset[path] = ""
        else:
            to_set[path] = value
    update: dict[str, dict[str, Any]] = {}
    if to_set:
        update["$set"] = to_set
    if to_unset:
        update["$unset"] = to_unset
    return update


def top_fields(paths: Iterable[str]) -> tuple[str, ...]:
    """The top-level field of each dotted path, each once, in order (``a.x``, ``a.y``, ``b`` -> ``a``, ``b``)."""
    return tuple(dict.fromkeys(path.split(".", 1)[0] for path in paths))


def lookup(document: Any, path: str, default: Any = None) -> Any:
    """The value at dotted ``path`` in nested dicts/lists, or ``default``."""
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return default
    return current


def _diff_mapping(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str, out: dict[str, FieldChange]) -> None:
    for key, after in new.items():
        before = old.get(key, _MISSING)
        if before is after:  # the common case: a dump shares its unchanged leaves with the snapshot
            continue
        if not _unchanged(before, after) and _diff_key(old, new, key, before, after, prefix, out):
            return
    for key, before in old.items():
        if key not in new and _diff_key(old, new, key, before, _MISSING, prefix, out):
            return


def _diff_key(old: Mapping[str, Any], new: Mapping[str, Any], key: str, before: Any, after: Any, prefix: str,
              out: dict[str, FieldChange]) -> bool:
    """Record what changed at ``key``; ``True`` when the whole parent was recorded instead (stop)."""
    if not _path_safe(key):
        if values_equal(before, after):
            return False
        _record_whole(old, new, prefix, out)
        return True
    _diff_value(before, after, f"{prefix}{key}", out)
    return False


def _diff_value(before: Any, after: Any, path: str, out: dict[str, FieldChange]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        _diff_mapping(before, after, path + ".", out)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (x, y) in enumerate(zip(before, after)):
            if not _unchanged(x, y):
                _diff_value(x, y, f"{path}.{index}", out)
    elif not values_equal(before, after):
        out[path] = FieldChange(
            None if before is _MISSING else before,
            None if after is _MISSING else after,
        )


_PLAIN_LEAVES = frozenset({str, int, float, bool, type(None), bytes})


def _unchanged(before: Any, after: Any) -> bool:
    """A fast, exact "no change": ``True`` only where :func:`values_equal` is ``True`` too.

    Equal plain values and equal containers are compared by C-level ``==``; since ``==``
    equates ``1``, ``1.0``, ``True`` and ``Decimal(1)``, containers must also hold the same
    types throughout (:func:`_same_types`). Anything else (datetimes, decimals, ids...) says
    ``False`` and takes the full comparison.
    """
    kind = type(before)
    if kind is not type(after):
        return False
    if kind in _PLAIN_LEAVES:
        return bool(before == after)
    if kind is dict or kind is list:
        return bool(before == after) and _same_types(before, after)
    return False


def _same_types(before: Any, after: Any) -> bool:
    """Whether two ``==``-equal values have the same type at every position."""
    kind = type(before)
    if kind is not type(after):
        return False
    if kind is dict:
        return all(value is after[key] or _same_types(value, after[key]) for key, value in before.items())
    if kind is list:
        return all(x is y or _same_types(x, y) for x, y in zip(before, after))
    return True


def _record_whole(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str, out: dict[str, FieldChange]) -> None:
    """A key MongoDB cannot address by path ('.' or leading '$'): report the parent whole."""
    parent = prefix.rstrip(".")
    for path in [p for p in out if p.startswith(prefix)]:
        del out[path]
    out[parent] = FieldChange(dict(old), dict(new))


def _path_safe(key: str) -> bool:
    return "." not in key and not key.startswith("$") and key != ""


def _related(a: str, b: str) -> bool:
    return a == b or b.startswith(a + ".") or a.startswith(b + ".")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
