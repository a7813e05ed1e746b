"""Class-level reads of :class:`~ormevents.model.base.EventModel`: ``get``, ``find_one``, ``find``, ``count``.

Loaded instances keep a snapshot of what was read, so later writes are diffed against it.
Filters are MongoDB filters; a top-level ``"id"`` key is translated to ``"_id"``. Reads never
return the outbox fields (``_oe_outbox``, ``_oe_pending_at``); inside an
``ormevents.transaction()`` block they use its session, so they see its writes. Fields in a
stored document that the model does not declare are ignored (and kept in the database:
updates only ``$set``/``$unset`` the paths that changed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from ..changes.diff import EMPTY
from ..delivery.outbox.records import HIDDEN_PROJECTION
from ..runtime import get_runtime
from .compare_and_set import stored_form
from .history import HistoryAccessor
from .transaction import current_session
from .bson_form import from_bson, to_bson
from .types import valid_id

logger = logging.getLogger("ormevents.model.query")

Sort = str | Sequence[tuple[str, int]] | None


class QueryMixin:
    """Read methods shared by every :class:`~ormevents.model.base.EventModel`; ``history``: the
    document's stored events (:mod:`ormevents.model.history`)."""

    history: ClassVar[HistoryAccessor] = HistoryAccessor()

    @classmethod
    async def get(cls, id: Any) -> Self | None:
        """The document with this id (an ObjectId may be given as its hex string), or ``None``.

        Raises :class:`~ormevents.errors.InvalidIdError` (a ``ValueError``) for a value that
        cannot be an id of this model, such as ``"not-an-id"``, before any database access.
        """
        return await cls.find_one({"_id": valid_id(_model(cls), id, "get")})

    @classmethod
    async def find_one(cls, filter: Mapping[str, Any] | None = None) -> Self | None:
        """The first document matching ``filter``, or ``None``."""
        model = _model(cls)
        document = await _collection(model).find_one(_filter(filter), HIDDEN_PROJECTION, **_session())
        return None if document is None else model._from_document(document)  # type: ignore[return-value]  # cls is model

    @classmethod
    async def find(
        cls,
        filter: Mapping[str, Any] | None = None,
        *,
        sort: Sort = None,
        limit: int = 0,
        skip: int = 0,
    ) -> list[Self]:
        """Every document matching ``filter``.

        ``sort``: ``"field"``, ``"-field"`` or ``[("field", 1), ("other", -1)]``; ``limit=0`` means no limit.
        """
        model = _model(cls)
        if limit < 0 or skip < 0:
            raise ValueError("limit and skip must be >= 0")
        cursor = _collection(model).find(_filter(filter), HIDDEN_PROJECTION, sort=_sort(sort), limit=limit, skip=skip,
                                         **_session())
        return [model._from_document(document) async for document in cursor]  # type: ignore[misc]  # cls is model

    @classmethod
    async def count(cls, filter: Mapping[str, Any] | None = None) -> int:
        """How many documents match ``filter``."""
        return int(await _collection(_model(cls)).count_documents(_filter(filter), **_session()))

    async def reload(self) -> Self:
        """Re-read this document: fields and snapshot take the stored values, pending changes are lost.

        The way to recover from a :class:`~ormevents.errors.ConflictError`: reload, apply the
        change again, save. Raises :class:`~ormevents.errors.DocumentNotFoundError` if the
        document is gone (or this instance was never saved).
        """
        from ..errors import DocumentNotFoundError

        model = _model(type(self))
        if self._snapshot is None:  # type: ignore[attr-defined]  # EventModel has it
            raise DocumentNotFoundError(f"{model.__name__} was never saved; there is nothing to reload")
        document = await _collection(model).find_one({"_id": to_bson(self.id)}, HIDDEN_PROJECTION,  # type: ignore[attr-defined]  # EventModel has id
                                                     **_session())
        if document is None:
            raise DocumentNotFoundError(f"{model.__name__} {self.id} is no longer in the database")  # type: ignore[attr-defined]
        fresh = model._from_document(document)
        for name in model.model_fields:
            self.__dict__[name] = getattr(fresh, name)
        self.__pydantic_fields_set__ = set(fresh.__pydantic_fields_set__)  # type: ignore[misc]  # pydantic's own
        self._mark_persisted(fresh._fields_document(), EMPTY, stored_form(document))  # type: ignore[attr-defined]
        return self

    @classmethod
    def _from_document(cls, document: Mapping[str, Any]) -> Any:
        model = _model(cls)
        plain = from_bson(dict(document))
        plain["id"] = plain.pop("_id", None)
        unknown = [key for key in plain if key not in model.model_fields]
        for key in unknown:
            del plain[key]
        if unknown:
            logger.debug("%s: ignoring stored fields the model does not declare: %s", model.__name__, unknown)
        instance = model.model_validate(plain)
        instance._mark_persisted(instance._fields_document(), EMPTY, stored_form(document))
        return instance


def _model(cls: type) -> Any:
    """``cls`` as an EventModel class (typed ``Any``: this mixin cannot import its subclass)."""
    return cls


def _collection(model: Any) -> Any:
    return get_runtime().collection(model.__ormevents__.collection)


def _session() -> dict[str, Any]:
    """``{"session": s}`` inside an ``ormevents.transaction()`` block (reads see its writes), else ``{}``."""
    session = current_session()
    return {} if session is None else {"session": session}


def _filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    if filter is None:
        return {}
    plain = {("_id" if key == "id" else key): value for key, value in filter.items()}
    return to_bson(plain)


def _sort(sort: Sort) -> list[tuple[str, int]] | None:
    if sort is None:
        return None
    if isinstance(sort, str):
        name, direction = (sort[1:], -1) if sort.startswith("-") else (sort, 1)
        return [("_id" if name == "id" else name, direction)]
    return [("_id" if name == "id" else name, direction) for name, direction in sort]
