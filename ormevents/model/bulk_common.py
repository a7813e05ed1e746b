"""What the bulk and query writes share: their result, the ``events=`` modes, field-path checks,
paging through the matching documents, and the one event of ``events="bulk"``.

Paging: the documents a call touches are read through one cursor sorted by ``_id``, in pages of
:data:`PAGE` (the driver's batch size), so memory stays bounded; a document the call itself
changed is never visited twice, even when the update changes a filtered field (an update never
moves a document in ``_id`` order).
"""

from __future__ import annotations

import logging
import typing
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ..delivery.outbox.records import EVENTS_COLLECTION, HIDDEN_PROJECTION
from ..errors import InvalidUpdateError
from ..events.event import Event
from .bson_form import from_bson, to_bson
from .context import current_metadata
from .storage import Unit

logger = logging.getLogger("ormevents.model.bulk")

EventsMode = Literal["per_document", "bulk", "off"]
MODES: tuple[str, ...] = ("per_document", "bulk", "off")
PAGE = 500
MAX_IDS = 1000
"""At most this many ids in a ``bulk_*`` event (``ids_truncated`` tells when there were more)."""


@dataclass
class BulkResult:
    """What a bulk or query write did: ``matched_count`` documents matched the filter,
    ``modified_count`` of them changed, ``deleted_count`` were deleted, ``inserted_ids`` were
    inserted; ``events`` events were emitted for it."""

    matched_count: int = 0
    modified_count: int = 0
    deleted_count: int = 0
    inserted_ids: list[Any] = field(default_factory=list)
    events: int = 0


def events_mode(events: str | None) -> EventsMode:
    """``events=`` checked: ``None`` means ``"per_document"``."""
    if events is None:
        return "per_document"
    if events not in MODES:
        raise InvalidUpdateError(f"events= takes 'per_document', 'bulk' or 'off', got {events!r}")
    return typing.cast(EventsMode, events)


def known_path(model: type[BaseModel], path: str) -> bool:
    """Whether ``model`` declares dotted ``path``: its first part is a field; below a nested
    pydantic model each part must be one of its fields (list indexes pass); below a dict, a
    list or ``Any`` anything goes."""
    node: Any = model
    for index, part in enumerate(path.split(".")):
        if index == 0 and part == "id":
            return False
        fields = fields_of(node)
        if fields is None:
            return True
        if part.isdigit() and index > 0:
            continue
        if part not in fields:
            return False
        node = fields[part].annotation
    return True


def fields_of(annotation: Any) -> dict[str, Any] | None:
    """The fields of the pydantic model ``annotation`` is (or is optionally); ``None`` otherwise."""
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) is not None else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return dict(candidate.model_fields)
    return None


def plain_filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    """``filter`` as MongoDB takes it (``"id"`` -> ``"_id"``, BSON values)."""
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise InvalidUpdateError(f"a filter is a dict such as {{'status': 'active'}}, got {filter!r}")
    return to_bson({("_id" if key == "id" else key): value for key, value in filter.items()})


async def pages(unit: Unit, collection: str, query: dict[str, Any], limit: int = 0,
                projection: Mapping[str, Any] | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """The documents matching ``query`` in pages of :data:`PAGE`, sorted by ``_id`` (see module
    doc); ``limit`` caps the total (0: none)."""
    target = unit.database[collection]
    session = unit.session_options
    cursor = target.find(query, dict(projection or HIDDEN_PROJECTION), sort=[("_id", 1)], limit=limit,
                         batch_size=PAGE, **session)
    page: list[dict[str, Any]] = []
    async for document in cursor:
        page.append(document)
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


async def matching_ids(unit: Unit, collection: str, query: dict[str, Any], limit: int) -> list[Any]:
    """The ids of the first ``limit`` documents matching ``query``, by ``_id``."""
    return [document["_id"] async for page in pages(unit, collection, query, limit, {"_id": 1}) for document in page]


def with_id(query: dict[str, Any], key: Any) -> dict[str, Any]:
    """``query`` restricted to the document ``key``, keeping ``_id`` a top-level condition where
    it can (the ``_id`` index stays usable; SecantusDB scans the collection for ``$and``)."""
    if "_id" not in query:
        return {**query, "_id": key}
    return {"$and": [query, {"_id": key}]}


def excluding(query: dict[str, Any], keys: list[Any]) -> dict[str, Any]:
    """``query`` without the documents ``keys`` (``query`` itself when there are none)."""
    if not keys:
        return query
    if "_id" not in query:
        return {**query, "_id": {"$nin": keys}}
    return {"$and": [query, {"_id": {"$nin": keys}}]}


async def emit_bulk(unit: Unit, model: Any, action: str, data: dict[str, Any]) -> int:
    """Record and hand over the one ``<model>.<action>`` event of an ``events="bulk"`` call
    (``data``: filter, update, counts, ids, paths); returns 1."""
    from ..delivery.base import PublishedEvent

    ids = data.pop("ids")
    data = from_bson({**data, "ids": ids[:MAX_IDS], "ids_truncated": len(ids) > MAX_IDS})
    event = Event(name=f"{model.__ormevents__.event_prefix}.{action}", data=data, metadata=current_metadata())
    pending = unit.prepare(event, EVENTS_COLLECTION, None, model.__ormevents__.retention)
    if pending is None:
        if unit.transactional:
            unit.events.append(PublishedEvent(event))
        else:
            await unit.publisher.publish(event)
        return 1
    _, error = await unit.record(pending, model.__ormevents__.collection, None, event,
                                 f"event {event.name} of {model.__name__}")
    if error is not None:
        raise error
    return 1


def log_off(model: Any, what: str, result: BulkResult) -> None:
    """The debug line of an ``events="off"`` call."""
    logger.debug("%s.%s with events='off': no event emitted (%s)", model.__name__, what, result)
