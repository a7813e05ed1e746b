"""Reading a pydantic model's field annotations (pure)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def nested_model_type(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class inside ``annotation`` (``Address | None`` -> ``Address``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
