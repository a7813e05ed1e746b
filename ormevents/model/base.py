""":class:`EventModel`: a pydantic model stored in MongoDB whose every write is diffed,
runs lifecycle hooks and emits events.

Write path (``save``/``update``/``delete``)::

    snapshot + diff -> before-hooks -> driver write ($set/$unset of changed paths only)
    -> Event -> publisher -> after-hooks

Reads (``get``/``find_one``/``find``/``count``) live in :mod:`ormevents.model.query`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, PrivateAttr

from ..changes.conditions import ChangeContext
from ..changes.diff import EMPTY, ChangeSet, diff, update_document
from ..errors import DocumentDeletedError, DocumentNotFoundError, IdChangedError
from ..events import codec
from ..events.event import Event, validate_action
from ..events.redaction import redact_document, redact_value
from ..runtime import get_runtime
from .context import current_metadata, hooks_are_disabled
from .hooks import HookKind, run_hooks
from .meta import EventModelConfig, ModelMeta, model_meta
from .query import QueryMixin
from .storage import to_bson
from .types import ObjectIdField, new_id

logger = logging.getLogger("ormevents.model.base")


class EventModel(QueryMixin, BaseModel):
    """Base class of event-aware MongoDB models (see the package docs for a tour).

    Class options: ``_collection = "users"`` (default: snake_case plural of the class name).
    ``id`` maps to ``_id``; it is an ``ObjectId`` generated on first save unless you declare
    another type. Fields are validated on assignment; unknown fields are rejected.
    """

    model_config = EventModelConfig(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    id: ObjectIdField | None = None

    __ormevents__: ClassVar[ModelMeta]
    _snapshot: dict[str, Any] | None = PrivateAttr(default=None)
    _saved_changes: ChangeSet = PrivateAttr(default=EMPTY)
    _deleted: bool = PrivateAttr(default=False)
    _stored_id: Any = PrivateAttr(default=None)
    _in_after_hooks: bool = PrivateAttr(default=False)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
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
        """The changes the last successful write persisted."""
        return self._saved_changes

    # ----- writes ------------------------------------------------------------------------

    @classmethod
    async def create(cls, **fields: Any) -> Self:
        """Validate ``fields``, insert the document and emit ``<model>.created``."""
        instance = cls(**fields)
        await instance.save()
        return instance

    async def save(self, *, skip_hooks: bool = False, emit: bool = True) -> Self:
        """Insert when new, else write the changed paths only (no change: no write, no hook, no event).

        ``skip_hooks=True`` skips lifecycle hooks; ``emit=False`` emits no event. A save of the
        same instance from inside its own after-hook writes and emits but runs no hooks, so it
        cannot recurse forever.
        """
        self._ensure_writable()
        run = not (skip_hooks or self._in_after_hooks or hooks_are_disabled(type(self)))
        if self.is_new:
            await self._insert(run, emit)
        else:
            await self._update(run, emit)
        return self

    async def update(self, *, skip_hooks: bool = False, emit: bool = True, **fields: Any) -> Self:
        """Set ``fields`` (validated together: nothing changes if any is invalid or unknown), then save."""
        self._ensure_writable()
        validated = type(self).model_validate({**self._fields_document(), "id": self.id, **fields})
        self._check_id(validated.id)  # before anything is set
        for name in fields:
            setattr(self, name, getattr(validated, name))
        return await self.save(skip_hooks=skip_hooks, emit=emit)

    async def delete(self, *, skip_hooks: bool = False, emit: bool = True) -> None:
        """Delete the document and emit ``<model>.deleted`` carrying its last persisted state."""
        self._ensure_writable()
        if self._snapshot is None:
            raise DocumentNotFoundError(f"{type(self).__name__} was never saved; there is nothing to delete")
        meta = type(self).__ormevents__
        run = not (skip_hooks or self._in_after_hooks or hooks_are_disabled(type(self)))
        last_state = self._snapshot
        removal = diff(last_state, None)
        if run:
            await run_hooks(self, meta.hooks[HookKind.BEFORE_DELETE], lambda: ChangeContext(removal, {}))
            self._check_id(self.id)  # a hook may have changed it
        event = self._event("deleted", last_state, removal) if emit else None
        result = await get_runtime().collection(meta.collection).delete_one({"_id": self.id})
        if result.deleted_count == 0:
            raise DocumentNotFoundError(f"{type(self).__name__} {self.id} is no longer in the database")
        self._deleted = True
        self._saved_changes = removal
        await self._finish(event, (HookKind.AFTER_DELETE,) if run else ())

    async def emit(
        self,
        action: str,
        *,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        delay: float | None = None,
        eta: datetime | None = None,
    ) -> Event:
        """Publish a custom ``<model>.<action>`` event (see :meth:`build_event`); returns it."""
        event = self.build_event(action, data=data, metadata=metadata)
        await get_runtime().publisher.publish(event, delay=delay, eta=eta)
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

    async def _insert(self, run: bool, emit: bool) -> None:
        meta = type(self).__ormevents__
        if self.id is None:
            self.id = new_id(type(self).__name__, type(self).model_fields["id"].annotation)
        if run:
            for kind in (HookKind.BEFORE_CREATE, HookKind.BEFORE_WRITE):
                await run_hooks(self, meta.hooks[kind], self._pending_context)
        current = self._fields_document()
        changes = diff(None, current)
        event = self._event("created", current, changes) if emit else None  # fails before writing if unserializable
        await get_runtime().collection(meta.collection).insert_one(to_bson({"_id": self.id, **current}))
        self._mark_persisted(current, changes)
        await self._finish(event, (HookKind.AFTER_CREATE, HookKind.AFTER_WRITE) if run else ())

    async def _update(self, run: bool, emit: bool) -> None:
        meta = type(self).__ormevents__
        if not self.changes:
            return
        if run:
            for kind in (HookKind.BEFORE_UPDATE, HookKind.BEFORE_WRITE):
                await run_hooks(self, meta.hooks[kind], self._pending_context)
            self._check_id(self.id)  # a hook may have changed it
        current = self._fields_document()
        changes = diff(self._snapshot, current)
        if not changes:
            return
        event = self._event("updated", current, changes) if emit else None
        update = update_document(to_bson(current), changes)
        result = await get_runtime().collection(meta.collection).update_one({"_id": self.id}, update)
        if result.matched_count == 0:
            raise DocumentNotFoundError(
                f"{type(self).__name__} {self.id} is no longer in the database; nothing was written"
            )
        self._mark_persisted(current, changes)
        await self._finish(event, (HookKind.AFTER_UPDATE, HookKind.AFTER_WRITE) if run else ())

    async def _finish(self, event: Event | None, after: tuple[HookKind, ...]) -> None:
        """Publish the event, then run after-hooks even if publishing failed (the write stands)."""
        meta = type(self).__ormevents__
        try:
            if event is not None:
                await get_runtime().publisher.publish(event)
                logger.debug("emitted %s %s for %s", event.name, event.id, event.object_id)
        finally:
            self._in_after_hooks = True
            try:
                for kind in after:
                    await run_hooks(self, meta.hooks[kind], self._saved_context)
            finally:
                self._in_after_hooks = False

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
        data = redact_document({"id": self.id, **document}, sensitive)
        pairs = changes.map_values(lambda path, value: redact_value(path, value, sensitive)).as_pairs()
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

    def _saved_context(self) -> ChangeContext:
        return ChangeContext(self._saved_changes, self._fields_document())

    def _fields_document(self) -> dict[str, Any]:
        """The instance as a plain document without ``id`` (fresh containers: safe to keep)."""
        return self.model_dump(mode="python", exclude={"id"})

    def _mark_persisted(self, document: dict[str, Any], changes: ChangeSet) -> None:
        self._snapshot = document
        self._saved_changes = changes
        self._stored_id = self.id

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

