"""The values of an update sent as given (``events="bulk"`` / ``"off"``) checked against the
model's field types before anything is written (pure, no I/O).

Those modes send the operators to MongoDB without reading the documents, so the model cannot
validate each result as ``per_document`` does. What can be checked without the documents is:
each ``$set`` value against the type of its path (``Annotated`` constraints included), each
``$push`` / ``$addToSet`` item against the item type of its array, each ``$inc`` amount against
the type of its number. Paths the model does not type (below a ``dict``, ``Any``) pass. Model and
field validators, and results that depend on the stored values, are not checked.

Example::

    >>> from pydantic import BaseModel
    >>> from ormevents.changes.operators import parse_update
    >>> class Doc(BaseModel):
    ...     n: int = 0
    >>> check_values(Doc, parse_update({"$set": {"n": "many"}}, lambda path: True))
    Traceback (most recent call last):
    ...
    ormevents.errors.InvalidUpdateError: $set 'n': 'many' is not a valid value of Doc.n (Input should be a valid integer, unable to parse string as an integer); nothing was written
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from ..changes.operators import UpdateSpec
from ..changes.paths import is_index
from ..errors import InvalidUpdateError
from .bulk_common import fields_of


def check_values(model: Any, spec: UpdateSpec) -> None:
    """Raise :class:`InvalidUpdateError` for a value of ``spec`` its path's type refuses (module doc)."""
    for operator, path, argument in spec.steps:
        if operator not in ("$set", "$push", "$addToSet", "$inc"):
            continue
        annotation = path_type(model, path)
        if operator in ("$push", "$addToSet"):
            annotation = _item_type(annotation)
            values = argument["$each"] if isinstance(argument, Mapping) and "$each" in argument else [argument]
        else:
            values = [argument]
        if annotation is Any:
            continue
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        for value in values:
            try:
                adapter.validate_python(value)
            except ValidationError as error:
                raise InvalidUpdateError(f"{operator} {path!r}: {value!r} is not a valid value of "
                                         f"{model.__name__}.{path} ({error.errors()[0]['msg']}); nothing was written"
                                         ) from error


def path_type(model: Any, path: str) -> Any:
    """The annotation of dotted ``path`` in ``model`` (constraints included), ``Any`` where the
    model does not say."""
    annotation: Any = model
    for part in path.split("."):
        fields = fields_of(annotation)
        if fields is not None and part in fields:
            info = fields[part]
            annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        elif is_index(part):
            annotation = _item_type(annotation)
        else:
            return Any
        if annotation is Any:
            return Any
    return annotation


def _item_type(annotation: Any) -> Any:
    """The item type of a list annotation (also optional, or annotated); ``Any`` otherwise."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _item_type(typing.get_args(annotation)[0])
    if origin is list:
        arguments = typing.get_args(annotation)
        return arguments[0] if arguments else Any
    if origin is not None:  # a union: its list member
        for member in typing.get_args(annotation):
            if typing.get_origin(member) is list or typing.get_origin(member) is Annotated:
                return _item_type(member)
    return Any
