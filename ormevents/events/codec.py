"""The JSON codec events travel in (never pickle).

Events carry plain values: ``dict`` (string keys), ``list``, ``str``, ``int``, ``float``,
``bool``, ``None`` and these rich scalars, each written as a one-key tagged object in the
style of MongoDB Extended JSON:

| Python         | JSON                                                | note              |
|----------------|-----------------------------------------------------|-------------------|
| ``ObjectId``   | ``{"$oid": "65f1..."}``                             |                   |
| ``datetime``   | ``{"$date": "2024-05-01T12:00:00.123456+00:00"}``   | always UTC-aware  |
| ``date``       | ``{"$dateonly": "2024-05-01"}``                     |                   |
| ``Decimal``    | ``{"$decimal": "10.50"}``                           | exact digits kept |
| ``UUID``       | ``{"$uuid": "1b4e28ba-..."}``                       |                   |
| ``bytes``      | ``{"$binary": "<base64>"}``                         |                   |

A user dict that happens to look like a tag is wrapped as ``{"$literal": {...}}`` so the
round trip stays exact. :func:`to_plain` first normalises richer inputs (pydantic models,
``Decimal128``, tuples, sets, enums, naive datetimes taken as UTC) and raises
:class:`~ormevents.errors.UnserializableValueError` naming the path of anything else.

Example::

    >>> from bson import ObjectId
    >>> text = dumps({"id": ObjectId("65f1a2b3c4d5e6f708192a3b")})
    >>> loads(text) == {"id": ObjectId("65f1a2b3c4d5e6f708192a3b")}
    True
"""

from __future__ import annotations

import base64
import enum
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bson import Decimal128, ObjectId
from pydantic import BaseModel

from ..errors import UnserializableValueError

_TAGS = frozenset({"$oid", "$date", "$dateonly", "$decimal", "$uuid", "$binary", "$literal"})
_SCALARS = (str, int, bool, type(None))


def to_plain(value: Any, path: str = "") -> Any:
    """Return ``value`` normalised to the values events may carry (see module doc).

    Raises :class:`UnserializableValueError` naming ``path`` for anything else.
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnserializableValueError(f"{_where(path)}: {value!r} is not a finite number")
        return value
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnserializableValueError(
                    f"{_where(path)}: dict key {key!r} is not a string; event data needs string keys"
                )
            plain[key] = to_plain(item, f"{path}.{key}" if path else key)
        return plain
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_plain(item, f"{path}.{index}" if path else str(index)) for index, item in enumerate(items)]
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, (ObjectId, Decimal, uuid.UUID, date)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, BaseModel):
        return to_plain(value.model_dump(mode="python"), path)
    if isinstance(value, enum.Enum):
        return to_plain(value.value, path)
    raise UnserializableValueError(
        f"{_where(path)}: a value of type {type(value).__name__} cannot be carried by an event; "
        "use str, numbers, bool, None, dict, list, ObjectId, datetime, date, Decimal, UUID or bytes"
    )


def encode(value: Any) -> Any:
    """Turn a plain value (see :func:`to_plain`) into JSON-compatible data with tags."""
    if isinstance(value, _SCALARS) or isinstance(value, float):
        return value
    if isinstance(value, dict):
        encoded = {key: encode(item) for key, item in value.items()}
        if len(value) == 1 and next(iter(value)) in _TAGS:
            return {"$literal": encoded}
        return encoded
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, datetime):
        return {"$date": value.isoformat()}
    if isinstance(value, date):
        return {"$dateonly": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes):
        return {"$binary": base64.b64encode(value).decode("ascii")}
    return encode(to_plain(value))


def decode(data: Any) -> Any:
    """Inverse of :func:`encode`: JSON data with tags back to Python values."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        tag, raw = next(iter(data.items()))
        if tag == "$literal":
            return {key: decode(item) for key, item in raw.items()}
        if tag in _TAGS:
            return _decode_tag(tag, raw)
    return {key: decode(item) for key, item in data.items()}


def _decode_tag(tag: str, raw: str) -> Any:
    if tag == "$oid":
        return ObjectId(raw)
    if tag == "$date":
        return datetime.fromisoformat(raw)
    if tag == "$dateonly":
        return date.fromisoformat(raw)
    if tag == "$decimal":
        return Decimal(raw)
    if tag == "$uuid":
        return uuid.UUID(raw)
    return base64.b64decode(raw)


def dumps(value: Any) -> str:
    """Serialise ``value`` (normalised with :func:`to_plain`) to compact JSON text."""
    return json.dumps(encode(to_plain(value)), separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> Any:
    """Parse JSON text written by :func:`dumps`."""
    return decode(json.loads(text))


def _where(path: str) -> str:
    return f"value at {path!r}" if path else "value"
