""":class:`EventModel`: a pydantic model stored in MongoDB whose every write is diffed,
runs lifecycle hooks and emits events.

Write path (``save``/``update``/``delete``)::

    snapshot + diff -> before-hooks -> Event (+ outbox record) -> conditional driver write
    (changed paths, with the record) -> hand-off -> after-hooks -> after_commit hooks

The driver write and the hand-off of its event are one unit a cancellation cannot split; a
write whose expectation no longer holds raises :class:`~ormevents.errors.ConflictError` and
changes nothing (see :mod:`ormevents.model.write` and :mod:`ormevents.model.storage`).

Reads (``get``/``find_one``/``find``/``count``) live in :mod:`ormevents.model.query`.
"""

from __future__ import annotations

import inspect
import logging
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, PrivateAttr

from ..changes.conditions import ChangeContext
from ..changes.diff import EMPTY, ChangeSet, diff
from ..errors import (ConflictError, DocumentDeletedError, DocumentNotFoundError, DocumentTooLargeError,
                      EventTooLargeError, IdChangedError, ModelDefinitionError)
from ..events import codec
from ..events.event import Event, validate_action
from ..events.redaction import redact_document, redact_value
from . import write
from .context import after_hook_changes, current_metadata, hooks_are_disabled
from .meta import EventModelConfig, ModelMeta, model_meta
from .bulk import BulkMixin
from .query import QueryMixin
from .bson_form import to_bson
from .types import ObjectIdField

logger = logging.getLogger("ormevents.model.base")


class EventModel(QueryMixin, BulkMixin, BaseModel):
    """Base class of event-aware MongoDB models (see the package docs for a tour).

    Class options: ``_collection = "users"`` (default: snake_case plural of the class name).
    ``id`` maps to ``_id``; it is an ``ObjectId`` generated on first save unless you declare
    another type. Fields are validated on assignment; unknown fields are rejected. A field may
    not take the name of a method or property (``save``, ``changes``, ``count``...):
    :class:`~ormevents.errors.ModelDefinitionError` when the class is defined.
    """

    model_config = EventModelConfig(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    id: ObjectIdField | None = None

    __ormevents__: ClassVar[ModelMeta]
    _snapshot: dict[str, Any] | None = PrivateAttr(default=None)
    _saved_changes: ChangeSet = PrivateAttr(default=EMPTY)
    _deleted: bool = PrivateAttr(default=False)
    _stored_id: Any = PrivateAttr(default=None)
    _stored: dict[str, Any] | None = PrivateAttr(default=None)  # the document as stored (compare_and_set)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Runs before pydantic collects the fields, so a shadowing field never gets that far.
        for name in _own_annotations(cls):
            if name in _RESERVED:
                raise ModelDefinitionError(
                    f"{cls.__name__}: a field named {name!r} would hide EventModel.{name}; rename the field"
                )
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__ormevents__ = model_meta(cls)

    @classmethod
    def __pydantic_on_complete__(cls) -> None:
        super().__pydantic_on_complete__()
        if "__ormevents__" in cls.__dict__:  # completed later (a forward reference resolved): derive it again
            cls.__ormevents__ = model_meta(cls)

    # ----- change tracking -------------------------------------------------------------

    @property
    def is_new(self) -> bool:
        """True until the instance is first saved (or if it was built, not loaded)."""
        return self._snapshot is None

    @property
    def changes(self) -> ChangeSet:
        """The pending changes against the persisted state (every field ``None -> value`` when new)."""
        return diff(self._snapshot, self._fields_document())

    @property
    def saved_changes(self) -> ChangeSet:
        """The changes the last successful write persisted; inside an after-hook, those of the
        write the hook runs for (even if an earlier after-hook saved again)."""
        hook_changes = after_hook_changes(self)
        return hook_changes if hook_changes is not None else self._saved_changes

    # ----- writes ------------------------------------------------------------------------

    @classmethod
    async def create(cls, *, session: Any = None, **fields: Any) -> Self:
        """Validate ``fields``, insert the document and emit ``<model>.created`` (``session``: see :meth:`save`)."""
        instance = cls(**fields)
        await instance.save(session=session)
        return instance

    async def save(self, *, skip_hooks: bool = False, emit: bool = True, session: Any = None) -> Self:
        """Insert when new, else write the changed paths only (no change: no write, no hook, no event).

        ``skip_hooks=True`` skips lifecycle hooks; ``emit=False`` emits no event. A save of the
        same instance from inside its own after-hook writes and emits but runs no hooks, so it
        cannot recurse forever.

        The update applies only if the changed paths still hold what this instance read; if
        another writer changed them, :class:`~ormevents.errors.ConflictError` is raised and the
        instance, the database and the event stream are as they were (``reload()`` and retry).
        Cancelled once the write is sent, the save still completes the write and hands off its
        event, then re-raises the cancellation (its after-hooks do not run).

        With a broker the event is recorded by the same write (the outbox) and handed over right
        after it, so it survives a broker outage or a crash. ``session``: a driver session; in a
        transaction, events and ``after_commit`` hooks wait for the commit (see
        :func:`ormevents.transaction`, whose blocks writes join without ``session=``).
        """
        self._ensure_writable()
        run = not (skip_hooks or after_hook_changes(self) is not None or hooks_are_disabled(type(self)))
        if self.is_new:
            await write.insert(self, run, emit, session)
        else:
            await write.update(self, run, emit, session)
        return self

    async def update(self, *, skip_hooks: bool = False, emit: bool = True, session: Any = None,
                     **fields: Any) -> Self:
        """Set ``fields`` and save.

        The instance with ``fields`` applied is validated once, as a whole (field and model
        validators); if that fails, or a name is unknown, nothing changes. Values a model
        validator adjusted in other fields are taken over too. If the write is refused
        (:class:`~ormevents.errors.ConflictError`, document gone, an event or document over its
        size limit), the fields are put back.
        """
        self._ensure_writable()
        validated = type(self).model_validate({**self._fields_document(), "id": self.id, **fields})
        self._check_id(validated.id)  # before anything is set
        # Assigned without per-field validation: that would check each field against the old
        # values of the others (a model validator) and could leave the instance half-updated.
        changed = [name for name in type(self).model_fields
                   if name in fields or validated.__dict__[name] != self.__dict__[name]]
        previous, fields_set = {name: self.__dict__[name] for name in changed}, set(self.__pydantic_fields_set__)
        self.__dict__.update({name: validated.__dict__[name] for name in changed})
        self.__pydantic_fields_set__.update(fields)
        try:
            return await self.save(skip_hooks=skip_hooks, emit=emit, session=session)
        except (ConflictError, DocumentNotFoundError, EventTooLargeError, DocumentTooLargeError):
            self.__dict__.update(previous)
            self.__pydantic_fields_set__ = fields_set
            raise

    async def delete(self, *, skip_hooks: bool = False, emit: bool = True, session: Any = None) -> None:
        """Delete the document and emit ``<model>.deleted`` carrying the state that was deleted.

        The delete applies only if every field still holds what this instance last read or
        wrote, so the event's values are exactly what was removed; otherwise
        :class:`~ormevents.errors.ConflictError` (``reload()`` and delete again). ``session``:
        see :meth:`save`.
        """
        self._ensure_writable()
        if self._snapshot is None:
            raise DocumentNotFoundError(f"{type(self).__name__} was never saved; there is nothing to delete")
        run = not (skip_hooks or after_hook_changes(self) is not None or hooks_are_disabled(type(self)))
        await write.delete(self, run, emit, session)

    async def emit(
        self,
        action: str,
        *,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        delay: float | None = None,
        eta: datetime | None = None,
        session: Any = None,
    ) -> Event:
        """Publish a custom ``<model>.<action>`` event (see :meth:`build_event`); returns it.

        With a broker it is first recorded in ``_oe_events`` (in the transaction, if any), so
        it survives a broker outage; ``delay``/``eta`` go through the Redis schedule.
        """
        event = self.build_event(action, data=data, metadata=metadata)
        await write.emit(self, event, delay, eta, session)
        return event

    def build_event(self, action: str, *, data: dict[str, Any] | None = None,
                    metadata: dict[str, Any] | None = None) -> Event:
        """The custom ``<model>.<action>`` event of this document, not published.

        ``data`` defaults to the current document, redacted; ``metadata`` adds to the
        :func:`~ormevents.model.context.event_metadata` in effect. Raises
        :class:`~ormevents.errors.InvalidEventNameError` for a bad ``action``.
        """
        validate_action(action)
        document = self._fields_document() if data is None else data
        return self._event(action, document, EMPTY, metadata, redact=data is None)

    # ----- internals ---------------------------------------------------------------------

    def _event(
        self,
        action: str,
        document: dict[str, Any],
        changes: ChangeSet,
        metadata: dict[str, Any] | None = None,
        *,
        redact: bool = True,
    ) -> Event:
        meta = type(self).__ormevents__
        sensitive = meta.sensitive if redact else frozenset()
        data = redact_document({"id": self.id, **meta.event_document(action, document, changes)}, sensitive)
        pairs = changes.as_pairs() if not sensitive else \
            changes.map_values(lambda path, value: redact_value(path, value, sensitive)).as_pairs()
        return Event(
            name=f"{meta.event_prefix}.{action}",
            object_id=self.id,
            data=data,
            changes=pairs,
            metadata={**current_metadata(), **(metadata or {})},
        )

    def _pending_context(self) -> ChangeContext:
        current = self._fields_document()
        return ChangeContext(diff(self._snapshot, current), current)

    def _fields_document(self) -> dict[str, Any]:
        """The instance as a plain document without ``id`` (fresh containers: safe to keep)."""
        document = self.model_dump()  # then drop id: cheaper than pydantic's exclude= (measured 1.3 us of 10)
        del document["id"]
        return document

    def _mark_persisted(self, document: dict[str, Any], changes: ChangeSet, stored: dict[str, Any]) -> None:
        """Record a write (or a read): ``document`` as the model sees it, ``stored`` as MongoDB has it."""
        self._snapshot = document
        self._saved_changes = changes
        self._stored_id = self.id
        self._stored = stored

    def _key(self) -> Any:
        """The ``_id`` value as stored."""
        return to_bson(self.id)

    def _ensure_writable(self) -> None:
        if self._deleted:
            raise DocumentDeletedError(f"{type(self).__name__} {self.id} was deleted; it cannot be written again")
        self._check_id(self.id)

    def _check_id(self, candidate: Any) -> None:
        """:class:`IdChangedError` if ``candidate`` is not the id this saved instance was stored under."""
        if self._snapshot is not None and candidate != self._stored_id:
            raise IdChangedError(
                f"{type(self).__name__} id was changed from {self._stored_id!r} to {candidate!r} after it was saved; "
                "a stored document's id never changes: create a new instance instead"
            )

    def __eq__(self, other: object) -> bool:
        """Same class and same field values (tracking state is not compared)."""
        if not isinstance(other, EventModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable model: unhashable, like pydantic's default

    def __repr_args__(self) -> Any:
        sensitive = type(self).__ormevents__.sensitive
        for name, value in super().__repr_args__():
            if name is not None and any(s == name or s.startswith(name + ".") for s in sensitive):
                plain = codec.to_plain(value) if not isinstance(value, (str, int, float)) else value
                yield name, redact_value(name, plain, sensitive)
            else:
                yield name, value


_RESERVED = frozenset(
    name for klass in (EventModel, QueryMixin, BulkMixin) for name in vars(klass) if not name.startswith("_")
) - {"id", "model_config"}
"""Names a field of a model may not take: EventModel's methods and properties (``save``, ``changes``...)."""


def _own_annotations(cls: type) -> dict[str, Any]:
    """The names the class body annotates, on every Python ormevents supports (3.14 evaluates
    annotations lazily: a name defined later must not make this fail)."""
    try:
        return inspect.get_annotations(cls)
    except NameError:  # Python >= 3.14, a forward reference: ask for the names only
        import annotationlib  # type: ignore[import-not-found]  # new in Python 3.14

        return dict(annotationlib.get_annotations(cls, format=annotationlib.Format.FORWARDREF))
