"""Conversions between model dumps and BSON documents (pure; :mod:`.storage` does the I/O).

``to_bson`` makes a ``model_dump(mode="python")`` storable by any async driver whatever its
codec options: ``Decimal`` -> ``Decimal128``, ``UUID`` -> standard ``Binary`` (subtype 4),
``date`` -> midnight ``datetime``, enums -> their value, sets/tuples -> lists.
``from_bson`` reverses the lossy parts (and makes datetimes UTC-aware: MongoDB stores UTC).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from bson import Binary, Decimal128
from bson.binary import UUID_SUBTYPE


def to_bson(value: Any) -> Any:
    """``value`` with every part made BSON-encodable (see module doc)."""
    if isinstance(value, Mapping):
        return {key: to_bson(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_bson(item) for item in value]
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, uuid.UUID):
        return Binary.from_uuid(value)
    if isinstance(value, enum.Enum):
        return to_bson(value.value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=UTC)
    return value


def from_bson(value: Any) -> Any:
    """A document read from MongoDB with BSON-only types turned back into Python ones."""
    if isinstance(value, Mapping):
        return {key: from_bson(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_bson(item) for item in value]
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Binary) and value.subtype == UUID_SUBTYPE:
        return value.as_uuid()
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
