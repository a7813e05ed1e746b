"""Field types for models: :data:`ObjectIdField` (an ``ObjectId`` that accepts its hex string)."""

from __future__ import annotations

from typing import Annotated, Any

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema


def _to_object_id(value: Any) -> ObjectId:
    if isinstance(value, ObjectId):
        return value
    if isinstance(value, str):
        try:
            return ObjectId(value)
        except InvalidId:
            raise ValueError(f"{value!r} is not a valid ObjectId (24 hex characters)") from None
    raise ValueError(f"expected an ObjectId or its 24-hex string, got {type(value).__name__}")


ObjectIdField = Annotated[
    ObjectId,
    PlainValidator(_to_object_id),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{24}$"}),
]
"""``bson.ObjectId`` as a pydantic field: accepts an ObjectId or its 24-hex string, dumps to str in JSON."""
