"""What the write path needs of a model instance: the :class:`Tracked` protocol (no I/O).

:class:`~ormevents.model.base.EventModel` implements it; :mod:`.write` and :mod:`.after` depend
on this protocol only, so the write path does not import the model class that calls it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from pydantic.fields import FieldInfo

from ..changes.conditions import ChangeContext
from ..changes.diff import ChangeSet
from ..events.event import Event
from .meta import ModelMeta


class Tracked(Protocol):
    """A model instance whose writes are diffed, hooked and turned into events."""

    __ormevents__: ClassVar[ModelMeta]
    __pydantic_fields__: ClassVar[dict[str, FieldInfo]]
    __pydantic_fields_set__: set[str]
    id: Any
    _snapshot: dict[str, Any] | None
    _saved_changes: ChangeSet
    _deleted: bool
    _stored_id: Any
    _stored: dict[str, Any] | None

    def _pending_context(self) -> ChangeContext:
        """The pending changes and the document, for before-hook conditions."""
        ...

    def _fields_document(self) -> dict[str, Any]:
        """The instance as a plain document without ``id``."""
        ...

    def _event(self, action: str, document: dict[str, Any], changes: ChangeSet,
               metadata: dict[str, Any] | None = None, *, redact: bool = True) -> Event:
        """The ``<model>.<action>`` event of this instance."""
        ...

    def _mark_persisted(self, document: dict[str, Any], changes: ChangeSet, stored: dict[str, Any]) -> None:
        """Record a write (or a read)."""
        ...

    def _key(self) -> Any:
        """The ``_id`` value as stored."""
        ...

    def _check_id(self, candidate: Any) -> None:
        """Raise if ``candidate`` is not the id this saved instance was stored under."""
        ...
