"""``Model.history``: a document's stored events in write order, and its state rebuilt from them.

``history`` works on the class (give the id) and on an instance::

    entries = await Order.history(order_id, since=datetime(2026, 11, 1, tzinfo=UTC), limit=100)
    entries = await order.history()
    [(e.name, e.changes) for e in entries]        # {path: (old, new)}, redacted paths redacted
    whole = await order.history(full=True)        # with each event's data: whole[0].event is an Event
    rebuilt = await Order.history.rebuild(order_id)            # or order.history.rebuild(at=...)
    rebuilt.agrees, rebuilt.disagreements                      # {path: (rebuilt, stored)}

Every event a model write produced with the outbox on (``init(redis_uri=...)``) is kept: pending
ones in the document, sent ones in ``_oe_history`` (see
:mod:`ormevents.delivery.outbox.history`), for the model's ``history_days`` (or the outbox's
``history_seconds``); a deleted document's history stays until then. ``since``/``until``/``at``
are datetimes (naive ones are UTC); ``since`` after ``until`` raises
:class:`~ormevents.errors.InvalidFilterError`, an id the model cannot have
:class:`~ormevents.errors.InvalidIdError`, both before any database access.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, overload

from ..changes.fold import disagreements, fold
from ..delivery.outbox.history import HistoryEntry, read_document, sequence_range
from ..delivery.outbox.records import HIDDEN_PROJECTION
from ..errors import InvalidFilterError
from ..events import codec
from ..runtime import get_runtime
from .bson_form import to_bson
from .meta import ModelMeta
from .types import valid_id


class Historied(Protocol):
    """What the history needs of a model class (:class:`~ormevents.model.base.EventModel` has it;
    a protocol, so that this module does not import the model class that holds it)."""

    __ormevents__: ClassVar[ModelMeta]

    @classmethod
    def _from_document(cls, document: Mapping[str, Any]) -> Any:
        """An instance read from a stored document."""
        ...


@dataclass(frozen=True)
class Rebuilt:
    """A document's state folded from its history, against the stored document.

    ``document``: the rebuilt fields (``None``: not created yet, or deleted, at that time);
    ``stored``: the fields stored now (``None``: no document); ``events``: how many were folded;
    ``redacted``: paths the history holds redacted (never compared); ``disagreements``:
    ``{path: (rebuilt, stored)}``. With ``at`` in the past, the disagreements are what changed since.
    """

    document: dict[str, Any] | None
    stored: dict[str, Any] | None
    events: int
    redacted: tuple[str, ...]
    disagreements: dict[str, tuple[Any, Any]]

    @property
    def agrees(self) -> bool:
        """True when the rebuilt state and the stored document agree (redacted paths aside)."""
        return not self.disagreements


def rebuilt(entries: list[HistoryEntry], stored: dict[str, Any] | None) -> Rebuilt:
    """Fold ``entries`` (oldest first) and compare the state with ``stored`` (the document's
    fields without ``_id``; ``None``: no document)."""
    state = fold((entry.action, entry.changes) for entry in entries)
    plain = None if stored is None else codec.to_plain(stored)
    return Rebuilt(state.document, plain, state.events, tuple(sorted(state.redacted)), disagreements(state, plain))


class ModelHistory:
    """``Model.history``: ``await Model.history(id, since=, until=, limit=)`` and ``.rebuild(id, at=)``."""

    def __init__(self, model: type[Historied]) -> None:
        self.model = model

    async def __call__(self, id: Any, *, since: datetime | None = None, until: datetime | None = None,
                      limit: int | None = None, full: bool = False) -> list[HistoryEntry]:
        """The events of document ``id`` written between ``since`` and ``until``, oldest first
        (``full``: with each event's ``data``, for :attr:`HistoryEntry.event`)."""
        low, high = sequence_range(since, until)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise InvalidFilterError(f"limit must be a positive integer or None, got {limit!r}")
        key = to_bson(valid_id(self.model, id, "history"))
        runtime, collection = get_runtime(), self.model.__ormevents__.collection
        outbox = runtime.outbox
        return await read_document(runtime.database, collection, key, since=low, until=high, limit=limit,
                                   in_flight=(lambda: outbox.in_flight(collection, key)) if outbox else tuple,
                                   full=full)

    async def rebuild(self, id: Any, *, at: datetime | None = None) -> Rebuilt:
        """Fold the events of document ``id`` written up to ``at`` (default: all of them) and compare
        the result with the stored document."""
        entries = await self(id, until=at)
        key = to_bson(valid_id(self.model, id, "history.rebuild"))
        raw = await get_runtime().collection(self.model.__ormevents__.collection).find_one({"_id": key},
                                                                                           HIDDEN_PROJECTION)
        return rebuilt(entries, None if raw is None else self.model._from_document(raw)._fields_document())


class DocumentHistory:
    """``instance.history``: ``await doc.history(since=, until=, limit=)`` and ``.rebuild(at=)``."""

    def __init__(self, model: type[Historied], id: Any) -> None:
        self.of_model, self.id = ModelHistory(model), id

    async def __call__(self, *, since: datetime | None = None, until: datetime | None = None,
                      limit: int | None = None, full: bool = False) -> list[HistoryEntry]:
        """This document's events (see :meth:`ModelHistory.__call__`)."""
        return await self.of_model(self.id, since=since, until=until, limit=limit, full=full)

    async def rebuild(self, *, at: datetime | None = None) -> Rebuilt:
        """This document's state rebuilt from its events (see :meth:`ModelHistory.rebuild`)."""
        return await self.of_model.rebuild(self.id, at=at)


class HistoryAccessor:
    """The ``history`` attribute of every model: :class:`ModelHistory` on the class,
    :class:`DocumentHistory` on an instance."""

    @overload
    def __get__(self, instance: None, owner: type[Historied]) -> ModelHistory: ...

    @overload
    def __get__(self, instance: object, owner: type[Historied]) -> DocumentHistory: ...

    def __get__(self, instance: Any, owner: type[Historied]) -> ModelHistory | DocumentHistory:
        if instance is None:
            return ModelHistory(owner)
        return DocumentHistory(type(instance), instance.id)
