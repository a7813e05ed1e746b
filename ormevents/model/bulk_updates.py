"""``update_many`` / ``update_one`` / ``find_one_and_update``: an operator update applied to the
matching documents, with an exact per-document event, one bulk event, or none.

Per document (``events="per_document"``), page by page (:func:`~.bulk_common.pages`):

1. each document is read (its *pre-image*), the update is applied to it in Python
   (:func:`ormevents.changes.operators.apply`) and the result validated by the model;
2. the write sends the *result*, not the operators: ``$set``/``$unset`` of the changed paths,
   with compare-and-set conditions requiring each changed path to still hold its pre-image
   value (:mod:`.compare_and_set`), and the document's outbox entry carrying its event;
3. a document whose write is refused (another writer changed it in between) is read again and
   goes back to step 1, until it applies or no longer matches the filter.

Why this is race-free: a write applies only where every path it changes still holds the value
the diff calls ``old``, in the same single-document write that records the event. So ``old`` is
always the value the write replaced, whatever ran concurrently, and an ``$inc`` by two
concurrent calls adds up (one of them is refused and recomputed). The post-image is computed,
not read back: since the changed paths held the pre-image at the write, the computed values are
exactly what was stored. What remains: a concurrent write to a path the update neither reads
nor changes (the filter's fields included) is not a conflict (the calls serialize as "this one
first"); ``$currentDate`` writes the time of the call, taken once, on the client.

``hooks=True`` runs each document through :meth:`EventModel.update` (before/after hooks,
``after_commit``), one write each. Without hooks, a page is one ``bulk_write`` (see
:mod:`.batches`) and its events one hand-off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from ..changes.diff import diff, update_document
from ..changes.operators import UpdateSpec, apply, check_stored, parse_update
from ..delivery.outbox.records import HIDDEN_PROJECTION
from ..errors import ConflictError, InvalidUpdateError
from .batches import Write, update_each
from .bson_form import to_bson
from .bulk_common import (
    MAX_IDS,
    BulkResult,
    emit_bulk,
    events_mode,
    excluding,
    known_path,
    log_off,
    matching_ids,
    pages,
    plain_filter,
    with_id,
)
from .bulk_values import check_values
from .compare_and_set import expected_filter, stored_after, stored_form
from .context import hooks_are_disabled
from .transaction import unit_for

MAX_ATTEMPTS = 100
"""A document refused this many times in a row (a hot document) raises ConflictError."""

T = TypeVar("T")
Seen = Callable[[Any, Any], None]
"""Called with ``(pre-image instance, post-image instance)`` for each document that matched."""


async def update_matching(model: Any, filter: Any, update: Any, *, limit: int, events: str | None,
                          hooks: bool, session: Any, seen: Seen | None = None) -> BulkResult:
    """Apply ``update`` to the documents matching ``filter`` (``limit=1``: the first one)."""
    spec = parse_update(update, lambda path: known_path(model, path))
    mode = events_mode(events)
    query = plain_filter(filter)
    unit = unit_for(session)
    result = BulkResult()
    if mode == "bulk" or (mode == "off" and seen is None):
        check_values(model, spec)
        return await _whole(model, unit, query, spec, limit, mode, result)
    now = _now()
    run = hooks and not hooks_are_disabled(model)
    emit = mode == "per_document"
    tried: list[Any] = []  # update_one: a match changed by another writer meanwhile, the next one is tried
    while True:
        found = False
        async for page in pages(unit, model.__ormevents__.collection, excluding(query, tried), limit):
            found = True
            tried.extend(document["_id"] for document in page)
            await _page(model, unit, query, spec, page, now, (run, emit), session, result, seen)
        if not limit or not found or result.matched_count:
            break
    if not emit:
        log_off(model, "find_one_and_update", result)
    return result


async def _page(model: Any, unit: Any, query: dict[str, Any], spec: UpdateSpec, page: list[dict[str, Any]],
                now: datetime, flags: tuple[bool, bool], session: Any, result: BulkResult,
                seen: Seen | None) -> None:
    """Update one page of documents (``flags``: run hooks, emit events), reading refused ones
    again until each applied or left the filter."""
    collection = model.__ormevents__.collection
    run, emit = flags
    for _ in range(MAX_ATTEMPTS):
        refused: list[Any] = []
        writes: list[Write] = []
        afters: list[tuple[Any, Any]] = []
        for raw in page:  # all checked before any is written
            check_stored(raw, spec)
        for raw in page:
            before = model._from_document(raw)
            after = _validated(model, before, spec, now)
            changes = diff(before._snapshot, after._fields_document())
            if not changes:
                result.matched_count += 1
                _report(seen, before, before)
            elif run:
                if await _with_hooks(before, after, changes.paths, emit, session):
                    result.matched_count += 1
                    result.modified_count += 1
                    result.events += emit
                    _report(seen, model._from_document(raw), before)
                else:
                    refused.append(raw["_id"])
            else:
                post = after._fields_document()
                event = before._event("updated", post, changes) if emit else None
                key = raw["_id"]
                stored = stored_form(raw)
                condition = {"_id": key, **expected_filter(stored, changes.paths)}
                writes.append(Write(condition, update_document(to_bson(post), changes),
                                    unit.prepare(event, collection, key, model.__ormevents__.retention), event))
                after._mark_persisted(post, changes, stored_after(stored, writes[-1].update) if seen else {})
                afters.append((before, after))
        applied = await update_each(unit, collection, writes, f"update_many of {model.__name__}")
        for write, ok, (before, after) in zip(writes, applied, afters):
            if ok:
                result.matched_count += 1
                result.modified_count += 1
                result.events += emit
                _report(seen, before, after)
            else:
                refused.append(write.condition["_id"])
        if not refused:
            return
        page = await _reread(unit, collection, query, refused)
        if not page:
            return
    raise ConflictError(f"{model.__name__}: {len(page)} documents kept changing under update_many "
                        f"({MAX_ATTEMPTS} attempts); nothing more was written to them", page[0]["_id"])


async def _with_hooks(before: Any, after: Any, paths: tuple[str, ...], emit: bool, session: Any) -> bool:
    """Write one document through ``before.update(...)`` (hooks and all); False when refused."""
    names = {path.split(".")[0] for path in paths}
    try:
        await before.update(emit=emit, session=session, **{name: after.__dict__[name] for name in names})
    except ConflictError:
        return False
    return True


def _validated(model: Any, before: Any, spec: UpdateSpec, now: datetime) -> Any:
    """The model instance ``spec`` turns ``before`` into (not persisted)."""
    document = apply(before._snapshot, spec, now)
    try:
        return model.model_validate({**document, "id": before.id})
    except ValidationError as error:
        raise InvalidUpdateError(f"{model.__name__} {before.id}: the update {dict(spec.raw)!r} gives an invalid "
                                 f"document ({error.errors()[0]['loc']}: {error.errors()[0]['msg']}); "
                                 "nothing was written to it") from error


def _report(seen: Seen | None, before: Any, after: Any) -> None:
    if seen is not None:
        seen(before, after)


async def _whole(model: Any, unit: Any, query: dict[str, Any], spec: UpdateSpec, limit: int, mode: str,
                 result: BulkResult) -> BulkResult:
    """``events="bulk"`` or ``"off"``: one driver update with the operators as given."""
    collection = model.__ormevents__.collection
    target = unit.database[collection]
    what = f"update_many of {model.__name__}"
    ids: list[Any] = []
    outcome: Any = None
    if limit:  # update_one: the first match by _id, as in the per-document mode; the next if it changed meanwhile
        tried: list[Any] = []
        while not ids and (key := await matching_ids(unit, collection, excluding(query, tried), 1)):
            tried.append(key[0])
            outcome = await _refusable(unit.call(target.update_one, with_id(query, key[0]), dict(spec.raw),
                                                 what=what), what)
            ids = key if outcome.matched_count else []
    else:
        ids = await matching_ids(unit, collection, query, MAX_IDS + 1) if mode == "bulk" else []
        outcome = await _refusable(unit.call(target.update_many, query, dict(spec.raw), what=what), what)
    if outcome is not None:
        result.matched_count, result.modified_count = outcome.matched_count, outcome.modified_count
    if mode == "off":
        log_off(model, "update_many", result)
    elif result.matched_count:
        result.events = await emit_bulk(unit, model, "bulk_updated", {
            "filter": query, "update": dict(spec.raw), "matched": result.matched_count,
            "modified": result.modified_count, "paths": list(spec.paths), "ids": ids})
    return result


async def _refusable(call: Awaitable[T], what: str) -> T:
    """``await call``, the server refusing the update for a stored value (``$inc`` of a null, a
    string...; not a duplicate key) raised as :class:`InvalidUpdateError`."""
    from pymongo.errors import DuplicateKeyError, WriteError

    try:
        return await call
    except WriteError as error:
        if isinstance(error, DuplicateKeyError):
            raise
        reason = (error.details or {}).get("errmsg") or str(error)
        raise InvalidUpdateError(f"{what}: MongoDB refused the update ({reason}); documents written before "
                                 "the refusal stay written") from error


async def _reread(unit: Any, collection: str, query: dict[str, Any], keys: list[Any]) -> list[dict[str, Any]]:
    """The documents ``keys`` as they are now, those still matching ``query`` (one indexed read each)."""
    target = unit.database[collection]
    session = unit.session_options
    if session:  # a driver session takes one call at a time
        found = [await target.find_one(with_id(query, key), HIDDEN_PROJECTION, **session) for key in keys]
    else:
        found = await asyncio.gather(*(target.find_one(with_id(query, key), HIDDEN_PROJECTION) for key in keys))
    return [document for document in found if document is not None]


def _now() -> datetime:
    """The time ``$currentDate`` writes: now, in milliseconds (what MongoDB keeps)."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
