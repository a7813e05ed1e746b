"""Field types for models: :data:`ObjectIdField` (an ``ObjectId`` that accepts its hex string),
and :func:`new_id`, the id a new document gets when none was set."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from ..errors import ConfigurationError, InvalidIdError


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


def new_id(model_name: str, annotation: Any) -> Any:
    """A fresh id for a field annotated ``annotation``: an ``ObjectId`` (or its string) or a
    ``UUID``; :class:`ConfigurationError` for any other type (set such ids yourself)."""
    try:
        kind = _id_kind(annotation)
    except TypeError:  # an unhashable annotation: not cached
        kind = _id_kind.__wrapped__(annotation)
    if kind == "objectid":
        return ObjectId()
    if kind == "uuid":
        return uuid.uuid4()
    if kind == "str":
        return str(ObjectId())
    raise ConfigurationError(f"{model_name}.id has type {annotation}; set it before saving")


@functools.lru_cache(maxsize=256)
def _id_kind(annotation: Any) -> str | None:
    """What :func:`new_id` makes for ``annotation`` (cached: inspecting an ``Annotated`` type costs
    ~30 us, once per insert otherwise)."""
    args = set(getattr(annotation, "__args__", ()) or (annotation,))
    if ObjectId in args or any(getattr(a, "__origin__", None) is ObjectId for a in args):
        return "objectid"
    if uuid.UUID in args:
        return "uuid"
    if str in args:
        return "str"
    return None


def valid_id(model: Any, id: Any, call: str) -> Any:
    """``id`` validated as an id of ``model`` (an ObjectId may be its hex string), or
    :class:`InvalidIdError` naming ``model.call(id)``."""
    from pydantic import ValidationError

    try:
        return model.__ormevents__.id_adapter.validate_python(id)
    except ValidationError as error:
        reason = error.errors()[0]["msg"] if error.errors() else str(error)
        raise InvalidIdError(
            f"{model.__name__}.{call}({id!r}): not a valid id for this model ({reason}); "
            "pass the id as stored, e.g. an ObjectId or its 24-hex string"
        ) from None
