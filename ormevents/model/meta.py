"""What ormevents derives from an :class:`~ormevents.model.base.EventModel` subclass when it is
defined: collection, event prefix, hooks, sensitive paths, the id's validator (pure).

Definition errors (a hook condition naming an unknown field, ...) raise
:class:`~ormevents.errors.ModelDefinitionError` here, at class creation. A model whose fields
name a class defined later (a forward reference) is derived again once pydantic completes it
(on first use or ``model_rebuild()``), so its nested sensitive fields and hook paths count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..events.naming import default_collection, snake_case
from ..events.redaction import sensitive_paths
from .hooks import HookTable, collect_hooks


class EventModelConfig(ConfigDict, total=False):
    """pydantic's ``ConfigDict`` plus ``sensitive_fields``: names whose values are redacted."""

    sensitive_fields: tuple[str, ...]


@dataclass(frozen=True)
class ModelMeta:
    """What ormevents derived from a model class when it was defined."""

    collection: str
    event_prefix: str
    hooks: HookTable
    sensitive: frozenset[str]
    id_adapter: TypeAdapter[Any]


def model_meta(cls: type[BaseModel]) -> ModelMeta:
    """The :class:`ModelMeta` of model class ``cls`` (when it is created, and again when it is completed)."""
    return ModelMeta(
        collection=_class_option(cls, "_collection") or default_collection(cls.__name__),
        event_prefix=snake_case(cls.__name__),
        hooks=collect_hooks(cls),
        sensitive=sensitive_paths(cls),
        id_adapter=TypeAdapter(cls.model_fields["id"].rebuild_annotation()),
    )


def _class_option(cls: type[BaseModel], name: str) -> Any:
    private = cls.__private_attributes__.get(name)
    if private is not None:
        return private.default
    return getattr(cls, name, None)
