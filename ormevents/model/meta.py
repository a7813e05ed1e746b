"""What ormevents derives from an :class:`~ormevents.model.base.EventModel` subclass when it is
defined: collection, event prefix, hooks, sensitive paths, the id's validator (pure).

Definition errors (a hook condition naming an unknown field, ...) raise
:class:`~ormevents.errors.ModelDefinitionError` here, at class creation. A model whose fields
name a class defined later (a forward reference) is derived again once pydantic completes it
(on first use or ``model_rebuild()``), so its nested sensitive fields and hook paths count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..changes.diff import ChangeSet
from ..delivery.outbox.records import FOREVER
from ..errors import ModelDefinitionError
from ..events.naming import default_collection, snake_case
from ..events.redaction import sensitive_paths
from .hooks import HookTable, collect_hooks


class EventModelConfig(ConfigDict, total=False):
    """pydantic's ``ConfigDict`` plus ``sensitive_fields`` (names whose values are redacted),
    ``history_days`` (how long the model's events stay in its history once sent: days, or
    ``None`` for forever; without it, the outbox's ``history_seconds``) and ``event_data``
    (what an ``updated`` event's ``data`` carries: ``"changes"``, the default, for the id and the
    top-level fields the write changed; a tuple of field names for those plus these fields;
    ``"document"`` for the whole document)."""

    sensitive_fields: tuple[str, ...]
    history_days: float | None
    event_data: Literal["changes", "document"] | tuple[str, ...]


@dataclass(frozen=True)
class ModelMeta:
    """What ormevents derived from a model class when it was defined."""

    collection: str
    event_prefix: str
    hooks: HookTable
    sensitive: frozenset[str]
    id_adapter: TypeAdapter[Any]
    retention: float | None = None
    """``history_days`` in seconds (``FOREVER`` for ``None``); ``None``: the outbox's setting."""
    event_fields: tuple[str, ...] | None = ()
    """The fields an ``updated`` event's ``data`` carries besides the changed ones (``event_data``);
    ``None``: the whole document."""

    def event_document(self, action: str, document: dict[str, Any], changes: ChangeSet) -> dict[str, Any]:
        """What of ``document`` (the model's fields, no id) an ``action`` event's ``data`` carries:
        for a write's ``updated`` (``changes`` not empty), the fields ``changes`` touched and
        :attr:`event_fields` (``None``: all of it); for anything else, all of it."""
        if action != "updated" or self.event_fields is None or not changes:
            return document
        return {name: document[name] for name in (*changes.fields, *self.event_fields) if name in document}


def model_meta(cls: type[BaseModel]) -> ModelMeta:
    """The :class:`ModelMeta` of model class ``cls`` (when it is created, and again when it is completed)."""
    return ModelMeta(
        collection=_class_option(cls, "_collection") or default_collection(cls.__name__),
        event_prefix=snake_case(cls.__name__),
        hooks=collect_hooks(cls),
        sensitive=sensitive_paths(cls),
        id_adapter=TypeAdapter(cls.model_fields["id"].rebuild_annotation()),
        retention=_retention(cls),
        event_fields=_event_fields(cls),
    )


def _event_fields(cls: type[BaseModel]) -> tuple[str, ...] | None:
    """The model's ``event_data`` as :attr:`ModelMeta.event_fields`; :class:`ModelDefinitionError`
    for anything but ``"changes"``, ``"document"`` or a tuple of the model's field names."""
    option = dict(cls.model_config).get("event_data", "changes")
    if option == "changes":
        return ()
    if option == "document":
        return None
    if isinstance(option, (tuple, list)) and all(isinstance(name, str) for name in option):
        unknown = [name for name in option if name not in cls.model_fields or name == "id"]
        if unknown:
            raise ModelDefinitionError(f"{cls.__name__}: event_data names {', '.join(map(repr, unknown))}, "
                                       f"not fields of the model (the id is always carried)")
        return tuple(dict.fromkeys(option))
    raise ModelDefinitionError(f"{cls.__name__}: event_data must be 'changes', 'document' or a tuple of field "
                               f"names, got {option!r}")


def _retention(cls: type[BaseModel]) -> float | None:
    """The model's ``history_days`` in seconds, :data:`FOREVER` for ``None``, ``None`` when unset;
    :class:`ModelDefinitionError` for a negative or non-numeric value."""
    config = dict(cls.model_config)
    if "history_days" not in config:
        return None
    days = config["history_days"]
    if days is None:
        return FOREVER
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
        raise ModelDefinitionError(f"{cls.__name__}: history_days must be a number of days >= 0 or None (forever), "
                                   f"got {days!r}")
    return float(days) * 86400


def _class_option(cls: type[BaseModel], name: str) -> Any:
    private = cls.__private_attributes__.get(name)
    if private is not None:
        return private.default
    return getattr(cls, name, None)
