"""Compare-and-set filters: a write applies only where the paths it changes still hold the values
this instance last read or wrote (pure, no I/O).

Every saved instance keeps the *stored form* of its document: the document as the driver
returned it, or as the server stored what this instance wrote (BSON-encoded, so a datetime
kept to microseconds in Python is compared as the milliseconds MongoDB stored). For each changed
path the update filter requires the stored value, exactly:

| stored form at ``path``     | condition                                                        |
|-----------------------------|------------------------------------------------------------------|
| a list ``L``                | ``{path: {"$eq": L, "$not": {"$elemMatch": {"$eq": L}}}}``        |
| any other value ``v``       | ``{path: {"$eq": v, "$not": {"$type": "array"}}}``               |
| missing                     | ``{path: {"$exists": False}}`` and its nearest stored parent is  |
|                             | still an object (so ``$set a.b`` never meets a null ``a``)       |

A changed path *below* a field whose stored form is not what the model read (a validator
normalised it: sorted a list, lowercased a dict's keys; or the field is missing and the model
filled in a default) is written and checked as that whole field (:func:`write_paths`): the
model's indexes and keys name nothing reliable in the stored form, and the expectation must be
what is stored.

The ``$not`` parts make equality exact: MongoDB's plain equality also matches an array that
merely *contains* the value. The conditions sit on the fields themselves, not under ``$and``
or ``$expr``, which keeps the ``_id`` index usable (SecantusDB scans the whole collection
otherwise; see docs/guarantees.md for the measured costs). ``null`` matches a missing field,
as the model reads both as ``None``.

Example::

    >>> expected_filter({"n": 1, "tags": ["a"]}, ["n"])
    {'n': {'$eq': 1, '$not': {'$type': 'array'}}}
    >>> expected_filter({}, ["prefs.theme"])
    {'prefs': {'$exists': False}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument

from ..changes.diff import lookup
from ..changes.paths import assign_path, remove_path
from ..delivery.outbox.records import HIDDEN_FIELDS
from .bson_form import to_bson

MISSING: Any = object()
_STORED: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)  # UUIDs stay Binary: any client can encode them back
_STANDARD: CodecOptions[dict[str, Any]] = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)  # as to_bson


def stored_form(document: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of a document read from the database (``_id`` and the outbox fields left out)."""
    return {key: value for key, value in document.items() if key != "_id" and key not in HIDDEN_FIELDS}


def stored_after(stored: Mapping[str, Any], update: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``stored`` with a ``$set``/``$unset`` update applied as the server stores it (a new dict)."""
    sent = bson.decode(bson.encode(to_bson(dict(update))), codec_options=_STORED)
    result = dict(stored)  # containers along the written paths are copied, the rest is shared
    for path, value in sent.get("$set", {}).items():
        assign_path(result, path, value)
    for path in sent.get("$unset", {}):
        remove_path(result, path)
    return result


def write_paths(stored: Mapping[str, Any], read: Mapping[str, Any], paths: Iterable[str]) -> tuple[str, ...]:
    """``paths`` to write and check, each nested path widened to its top-level field when that
    field's ``stored`` form differs from the model's ``read`` value of it (see module doc).

    Example::

        >>> write_paths({"tags": ["B", "a"]}, {"tags": ["a", "b"]}, ["tags.1"])
        ('tags',)
        >>> write_paths({"tags": ["a", "b"]}, {"tags": ["a", "b"]}, ["tags.1"])
        ('tags.1',)
    """
    result: dict[str, None] = {}
    for path in paths:
        field = path.split(".", 1)[0]
        if field != path and not _same_as_stored(stored.get(field, MISSING), read.get(field, MISSING)):
            path = field
        result[path] = None
    return tuple(result)


def expected_filter(stored: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The filter conditions requiring each of ``paths`` to hold its value in ``stored`` (see module doc)."""
    conditions: dict[str, Any] = {}
    for path in paths:
        for key, condition in _conditions(stored, path).items():
            conditions[key] = {**conditions[key], **condition} if key in conditions else condition
    return conditions


def conflicting_paths(now: Mapping[str, Any], stored: Mapping[str, Any], paths: Iterable[str]) -> tuple[str, ...]:
    """Those of ``paths`` whose value (or, for a missing one, whose parent's kind) differs
    between the document ``now`` in the database and the ``stored`` form this instance expected."""
    differing = []
    for path in paths:
        expected = lookup(stored, path, MISSING)
        if not _same(lookup(now, path, MISSING), expected):
            differing.append(path)
        elif expected is MISSING and "." in path:
            parent = path.rsplit(".", 1)[0]
            if _kind(lookup(now, parent, MISSING)) != _kind(lookup(stored, parent, MISSING)):
                differing.append(path)
    return tuple(differing)


def _conditions(stored: Mapping[str, Any], path: str) -> dict[str, Any]:
    value = lookup(stored, path, MISSING)
    if value is not MISSING:
        return {path: _exactly(value)}
    parts = path.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:depth])
        found = lookup(stored, parent, MISSING)
        if found is MISSING:
            continue
        absent = {".".join(parts[: depth + 1]): {"$exists": False}}
        if isinstance(found, Mapping):
            return {**absent, parent: {"$type": "object", "$not": {"$type": "array"}}}
        return {**absent, parent: _exactly(found)}
    return {parts[0]: {"$exists": False}}


def _exactly(value: Any) -> dict[str, Any]:
    value = to_bson(value)
    if isinstance(value, list):
        return {"$eq": value, "$not": {"$elemMatch": {"$eq": value}}}
    return {"$eq": value, "$not": {"$type": "array"}}


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return bson.encode({"v": to_bson(a)}) == bson.encode({"v": to_bson(b)})


def _same_as_stored(stored: Any, read: Any) -> bool:
    """:func:`_same`, encoding directly where the value is already BSON (C speed, the common
    case); a value that cannot be encoded at all counts as different (the write widens)."""
    if stored is MISSING or read is MISSING:
        return stored is read
    try:
        return bson.encode({"v": stored}, codec_options=_STANDARD) == _encoded(read)
    except (InvalidDocument, OverflowError):
        return False


def _encoded(value: Any) -> bytes:
    try:
        return bson.encode({"v": value}, codec_options=_STANDARD)
    except InvalidDocument:  # Decimal, date, set...: made storable first
        return bson.encode({"v": to_bson(value)}, codec_options=_STANDARD)


def _kind(value: Any) -> str:
    return "missing" if value is MISSING else "object" if isinstance(value, Mapping) else type(value).__name__
