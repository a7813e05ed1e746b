"""``insert_many`` and ``delete_many``: many documents, with per-document events, one bulk event,
or none.

* ``insert_many``, per document: each document carries its ``created`` record in its own outbox
  fields, so a document and its event are inserted together; a page is one ordered
  ``insert_many`` and one hand-off (:func:`~.batches.insert_all`), and the next page is
  prepared in a worker thread while one is in flight. With ``hooks=True`` each
  instance is saved in turn (its hooks run, one write each).
* ``delete_many``, per document: each matching document goes through the delete of a single
  instance (:func:`ormevents.model.write.delete`): its ``deleted`` record is written as an intent
  row first, the delete requires every field to still hold what was read, so the event carries
  exactly the state removed. A document changed meanwhile is read again and deleted if it still
  matches; one deleted by someone else meanwhile is skipped (not counted). Several deletes of a
  page are in flight at once when no hook runs and no driver session is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..changes.diff import diff
from ..delivery.outbox.records import HIDDEN_PROJECTION
from ..errors import ConflictError, DocumentNotFoundError, InvalidUpdateError
from . import write
from .batches import insert_all
from .bson_form import to_bson
from .bulk_common import (
    MAX_IDS,
    PAGE,
    BulkResult,
    emit_bulk,
    events_mode,
    log_off,
    matching_ids,
    pages,
    plain_filter,
    with_id,
)
from .compare_and_set import stored_after
from .context import hooks_are_disabled
from .shield import outlast
from .transaction import unit_for
from .types import new_id

_CONCURRENT_DELETES = 16


async def insert_documents(model: Any, documents: Iterable[Any], *, events: str | None, hooks: bool,
                           session: Any) -> BulkResult:
    """Insert ``documents`` (instances of ``model`` or dicts of its fields), in order.

    Without hooks, page ``k + 1`` is prepared (ids, diffs, events, records, BSON) in a worker
    thread while page ``k`` is written: the client's work overlaps the server's, and the event
    loop is not held for a whole page's preparation (only the first page is prepared on it). The
    preparation reads the caller's context (event metadata, trace), copied to the thread. A page
    is sent only once the one before it was inserted whole, so a failure part-way (a duplicate
    key, a bad document further on) stops the rest as before. A page prepared but not sent gives
    back the ids it gave (its thread is waited for, even when the caller is cancelled); those of
    the page that failed stay, as they were."""
    mode = events_mode(events)
    run = hooks and not hooks_are_disabled(model)
    unit = unit_for(session)
    result = BulkResult()
    emit = mode == "per_document"
    built: _Page | None = None
    pages = _pages_of(model, documents)
    while True:
        try:
            page = next(pages, None)
        except BaseException:  # a bad document: the page before it is written first, as it was
            if built is not None:
                await _write(model, unit, built, result)
            raise
        if page is None:
            break
        if run:
            await _save_each(page, emit, session, result)
            continue
        if built is None:
            built = _build(model, unit, page, emit)
            continue
        preparing = asyncio.ensure_future(asyncio.to_thread(_build, model, unit, page, emit))
        try:
            await _write(model, unit, built, result)
        except BaseException:
            await _drop(preparing)
            raise
        cancelled = await outlast(preparing)
        if cancelled is not None:
            await _drop(preparing)
            raise cancelled
        built = preparing.result()  # raises a failed preparation (its ids already given back)
    if built is not None:
        await _write(model, unit, built, result)
    if mode == "bulk" and result.inserted_ids:
        result.events = await emit_bulk(unit, model, "bulk_created", {
            "inserted": len(result.inserted_ids),
            "paths": list(model.model_fields.keys() - {"id"}), "ids": list(result.inserted_ids)})
    if mode == "off":
        log_off(model, "insert_many", result)
    return result


def _pages_of(model: Any, documents: Iterable[Any]) -> Iterator[list[Any]]:
    """``documents`` as instances, in pages of :data:`PAGE`. An instance given twice within two
    adjacent pages (the one being written and the next: not saved yet, so not caught by
    ``is_new``) is refused as :class:`InvalidUpdateError`, before its page is written."""
    page: list[Any] = []
    recent: dict[int, Any] = {}  # the instances of this page and the one before (alive: their ids stay unique)
    before: dict[int, Any] = {}
    for item in documents:
        instance = _instance(model, item)
        if id(instance) in recent or id(instance) in before:
            raise InvalidUpdateError(f"insert_many: the same {model.__name__} instance is given twice "
                                     f"({instance!r}); give each document once")
        recent[id(instance)] = instance
        page.append(instance)
        if len(page) == PAGE:
            yield page
            page, before, recent = [], recent, {}
    if page:
        yield page


async def _save_each(page: list[Any], emit: bool, session: Any, result: BulkResult) -> None:
    """``hooks=True``: each instance is saved in turn (its hooks run)."""
    for instance in page:
        await instance.save(emit=emit, session=session)
        result.inserted_ids.append(instance.id)
        result.events += emit


@dataclass
class _Page:
    """A page ready to insert: its instances, their BSON documents, records, events and states,
    and the instances given a new id for it (taken back if the page is not sent)."""

    instances: list[Any]
    documents: list[dict[str, Any]] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    states: list[tuple[Any, Any, dict[str, Any]]] = field(default_factory=list)
    fresh: list[Any] = field(default_factory=list)


def _build(model: Any, unit: Any, page: list[Any], emit: bool) -> _Page:
    """Prepare ``page`` (pure but for the ids given to instances without one: given back if it
    fails part-way)."""
    meta = model.__ormevents__
    built = _Page(page)
    try:
        for instance in page:
            if instance.id is None:
                instance.id = new_id(model.__name__, model.model_fields["id"].annotation)
                built.fresh.append(instance)
            current = instance._fields_document()
            changes = diff(None, current)
            event = instance._event("created", current, changes) if emit else None
            document = to_bson({"_id": instance.id, **current})
            built.documents.append(document)
            built.records.append(unit.prepare(event, meta.collection, document["_id"], meta.retention))
            built.events.append(event)
            built.states.append((current, changes, document))
    except BaseException:
        _give_back(built)
        raise
    return built


def _give_back(built: _Page) -> None:
    """A page not sent: its instances lose the ids it gave them."""
    for instance in built.fresh:
        instance.id = None


async def _drop(preparing: asyncio.Future[_Page]) -> None:
    """A page being prepared that will not be sent: wait for its thread (it cannot be stopped, and
    the caller's cancellation meanwhile is left to the caller), then give back the ids it gave
    (a failed preparation gave them back itself)."""
    await outlast(preparing)
    if not preparing.cancelled() and preparing.exception() is None:
        _give_back(preparing.result())


async def _write(model: Any, unit: Any, built: _Page, result: BulkResult) -> None:
    """Insert a prepared page and hand its records over (see :func:`~.batches.insert_all`)."""
    inserted, failure = await insert_all(unit, model.__ormevents__.collection, built.documents, built.records,
                                         built.events, f"insert_many of {model.__name__}")
    for instance, (current, changes, document) in list(zip(built.instances, built.states))[:inserted]:
        instance._mark_persisted(current, changes, stored_after({}, {"$set": {
            key: value for key, value in document.items() if key != "_id"}}))
    result.inserted_ids.extend(instance.id for instance in built.instances[:inserted])
    result.events += sum(event is not None for event in built.events[:inserted])
    if failure is not None:
        raise failure


def _instance(model: Any, item: Any) -> Any:
    if isinstance(item, model):
        if not item.is_new:
            raise InvalidUpdateError(f"insert_many: {model.__name__} {item.id} was saved already; "
                                     "insert new instances only")
        return item
    if isinstance(item, dict):
        return model(**item)
    raise InvalidUpdateError(f"insert_many takes {model.__name__} instances or dicts of fields, got {item!r}")


async def delete_matching(model: Any, filter: Any, *, events: str | None, hooks: bool, session: Any) -> BulkResult:
    """Delete every document matching ``filter``."""
    mode = events_mode(events)
    query = plain_filter(filter)
    unit = unit_for(session)
    result = BulkResult()
    collection = model.__ormevents__.collection
    if mode != "per_document":
        ids = await matching_ids(unit, collection, query, MAX_IDS + 1) if mode == "bulk" else []
        outcome = await unit.call(unit.database[collection].delete_many, query, what=f"delete_many of {model.__name__}")
        result.deleted_count = outcome.deleted_count
        if mode == "off":
            log_off(model, "delete_many", result)
        elif result.deleted_count:
            result.events = await emit_bulk(unit, model, "bulk_deleted", {
                "filter": query, "update": None, "deleted": result.deleted_count, "paths": [], "ids": ids})
        return result
    run = hooks and not hooks_are_disabled(model)
    gate = asyncio.Semaphore(1 if run or unit.session is not None else _CONCURRENT_DELETES)  # a session: one at a time

    async def one(raw: dict[str, Any]) -> None:
        async with gate:
            if await _delete_one(model, query, raw, run, session):
                result.deleted_count += 1
                result.events += 1

    async for page in pages(unit, collection, query):
        await asyncio.gather(*(one(raw) for raw in page))
    return result


async def _delete_one(model: Any, query: dict[str, Any], raw: dict[str, Any], run: bool, session: Any) -> bool:
    """Delete one document read as ``raw``; read it again while it keeps changing. False: it is
    gone or no longer matches."""
    for _ in range(100):
        instance = model._from_document(raw)
        try:
            await write.delete(instance, run, True, session)
            return True
        except DocumentNotFoundError:
            return False
        except ConflictError:
            unit = unit_for(session)
            found = await unit.call(unit.database[model.__ormevents__.collection].find_one,
                                    with_id(query, raw["_id"]), HIDDEN_PROJECTION,
                                    what=f"delete_many of {model.__name__}")
            if found is None:
                return False
            raw = found
    raise ConflictError(f"{model.__name__} {raw['_id']} kept changing under delete_many; it was not deleted",
                        raw["_id"])
