"""``await watch(User)``: writes made outside ormevents (the mongo shell, another service) become
the same ``<model>.created`` / ``updated`` / ``deleted`` events, with diffs, from a MongoDB change
stream.

* **Images.** The watcher turns on ``changeStreamPreAndPostImages`` for the collection
  (``collMod``; MongoDB 6.0+ and SecantusDB) and asks for pre-images: an update's diff is the
  pre-image against the pre-image with the change's ``updateDescription`` applied (exact: both
  come from the change itself, never from a later read). Without pre-images (an older server, or
  a change made before they were turned on) an update's ``old`` values are ``None``.
* **Its own writes are skipped.** A write made by ormevents carries its outbox entry
  (``_oe_outbox``; a clean-up only touches ``_oe_`` fields) and a delete leaves its ``deleted``
  row in ``_oe_events`` (recorded shortly before the delete, and claimed by the first delete
  change of that document that the watcher sees): those changes already had their event. Writes made by ormevents with no
  broker outbox (eager/recording publishers), with ``emit=False`` or ``events="off"``, or deletes
  whose history row was already expired, look external and are emitted.
* **Resume.** After each batch of events (up to ``batch`` changes, or 0.25 s of them) is handed to
  the publisher, the batch's last resume
  token is stored in ``_oe_watch`` (one document per collection). A restart resumes after it; at
  most the changes of one batch are published again, under the same event ids (derived from the
  change's resume token), which the workers treat as the same events.
* **History lost.** If the stored token fell off the oplog, :class:`ChangeStreamHistoryLostError`
  is logged at ERROR with the time of the last change seen, and raised: nothing is skipped
  silently. ``from_now=True`` starts from the current time instead (after you reconciled).
* **One leader.** With ``redis_uri``, watchers of one collection share a Redis lease
  (:class:`~ormevents.delivery.outbox.lease.Lease`): one follows the stream, the others wait and
  take over within ``lease_ttl`` seconds when it stops. Without it, run a single watcher.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..changes.diff import ChangeSet, FieldChange, diff
from ..delivery.outbox.lease import Lease
from ..delivery.outbox.records import EVENTS_COLLECTION, HIDDEN_FIELDS
from ..errors import ChangeStreamHistoryLostError
from ..events.event import Event
from ..runtime import get_runtime
from .bson_form import from_bson
from .compare_and_set import stored_after

logger = logging.getLogger("ormevents.model.watcher")
TOKENS = "_oe_watch"
_HISTORY_LOST = (286, 280)  # ChangeStreamHistoryLost, ChangeStreamFatalError
_MAX_WAIT = 0.25  # seconds a change waits for its batch under steady traffic
_OWN_DELETE_SKEW = timedelta(seconds=30)  # how much earlier than its delete a row of ours may be recorded
_NAMESPACE = uuid.UUID("6f1c5c1e-9d2a-4a57-8f0e-5b1d6d0c8a13")


async def watch(model: Any, *, redis_uri: str | None = None, lease_ttl: float = 15.0, batch: int = 100,
                from_now: bool = False, stop: asyncio.Event | None = None) -> None:
    """Follow ``model``'s collection and emit events for writes made outside ormevents, until
    ``stop`` is set (or the task is cancelled). See the module doc.

    Example::

        stop = asyncio.Event()
        task = asyncio.create_task(watch(User, redis_uri="redis://localhost:6379/0", stop=stop))
    """
    stop = stop or asyncio.Event()
    collection = model.__ormevents__.collection
    lease = None
    if redis_uri is not None:
        import redis.asyncio

        lease = Lease(redis.asyncio.Redis.from_url(redis_uri), f"ormevents:watch:lease:{collection}",
                      f"ormevents:watch:fence:{collection}", lease_ttl)
    else:
        logger.info("watch(%s) without redis_uri: no leader lease, run one watcher only", model.__name__)
    try:
        while not stop.is_set():
            if lease is not None and not await lease.acquire():
                await _wait(stop, lease_ttl / 3)
                continue
            await _follow(model, lease, batch, from_now, stop, lease_ttl / 3)
            from_now = False
    finally:
        if lease is not None:
            await lease.release()
            await lease.client.aclose()


async def _follow(model: Any, lease: Lease | None, batch: int, from_now: bool, stop: asyncio.Event,
                  renew_every: float) -> None:
    """Follow the stream while this watcher leads (see module doc)."""
    from pymongo.errors import OperationFailure

    database = get_runtime().database
    collection = model.__ormevents__.collection
    await _images_on(database, collection)
    stored = await database[TOKENS].find_one({"_id": collection})
    resume = None if from_now or stored is None else stored["token"]
    options: dict[str, Any] = {"full_document_before_change": "whenAvailable"}
    if resume is not None:
        options["resume_after"] = resume
    loop = asyncio.get_running_loop()
    renewed = loop.time()
    try:
        async with await database[collection].watch(**options) as stream:
            events: list[Event] = []
            oldest = loop.time()  # when the oldest change not yet handed over was seen
            while not stop.is_set():
                change = await stream.try_next()
                if change is not None:
                    event = await _event(model, database, change)
                    if event is not None:
                        events.append(event)
                if change is None or len(events) >= batch or loop.time() - oldest > _MAX_WAIT:
                    await _hand_over(database, collection, events, stream.resume_token, change)
                    events, oldest = [], loop.time()
                    if change is None:
                        await _wait(stop, 0.05)
                if lease is not None and loop.time() - renewed > renew_every:
                    renewed = loop.time()
                    if not await lease.acquire():
                        logger.warning("watch(%s) lost its lease; another watcher goes on", model.__name__)
                        return
    except OperationFailure as error:
        if error.code in _HISTORY_LOST or "ChangeStreamHistoryLost" in str(error):
            since = (stored or {}).get("at")
            message = (f"watch({model.__name__}): the stored resume token fell off the oplog; writes made to "
                       f"{collection} since {since or 'the last change seen'} were missed and got no event. "
                       "Reconcile that period, then start the watcher with from_now=True")
            logger.error(message)
            raise ChangeStreamHistoryLostError(message) from error
        raise


async def _hand_over(database: Any, collection: str, events: list[Event], token: Any,
                     change: Mapping[str, Any] | None) -> None:
    """Publish ``events`` (pipelined), then store ``token`` (only once they were handed over)."""
    if events:
        await get_runtime().publisher.publish_many(events)
    if token is not None and (events or change is not None):
        await database[TOKENS].update_one({"_id": collection}, {"$set": {"token": token, "at": datetime.now(UTC)}},
                                          upsert=True)


async def _event(model: Any, database: Any, change: Mapping[str, Any]) -> Event | None:
    """The event of one change, or ``None`` (ormevents' own write, or an operation without one)."""
    kind = change["operationType"]
    key = change["documentKey"]["_id"]
    before = change.get("fullDocumentBeforeChange")
    if kind == "insert":
        if any(field in change["fullDocument"] for field in HIDDEN_FIELDS):
            return None
        action, fields = "created", _fields(model, change["fullDocument"])
        changes = diff(None, fields)
    elif kind in ("update", "replace"):
        if _own_update(change):
            return None
        after = _post_image(change, before)
        action, fields = "updated", _fields(model, after)
        changes = _update_changes(model, change, before, after)
        if not changes:
            return None
    elif kind == "delete":
        if await _own_delete(model, database, change, key):
            return None
        action, fields = "deleted", _fields(model, before or {})
        changes = diff(fields, None)
    else:
        return None
    instance = model.model_construct(id=from_bson(key))
    event: Event = instance._event(action, fields, changes)
    return event.model_copy(update={"id": uuid.uuid5(_NAMESPACE, f"{model.__ormevents__.collection}:{_token(change)}")})


async def _own_delete(model: Any, database: Any, change: Mapping[str, Any], key: Any) -> bool:
    """Whether ormevents made this delete: a ``deleted`` row for the document in ``_oe_events``,
    recorded at most :data:`_OWN_DELETE_SKEW` before the change (clock skew; an older row is
    another lifetime of the same id) and not yet claimed by another delete change of the stream
    (the first claims it; replaying the same change finds its own claim)."""
    meta = model.__ormevents__
    token = _token(change)
    when = change.get("wallTime") or (change["clusterTime"].as_datetime() if "clusterTime" in change else None)
    condition: dict[str, Any] = {"c": meta.collection, "o": key, "n": f"{meta.event_prefix}.deleted",
                                 "$or": [{"watch_claim": {"$exists": False}}, {"watch_claim": token}]}
    if isinstance(when, datetime):
        condition["at"] = {"$gte": when.replace(tzinfo=when.tzinfo or UTC) - _OWN_DELETE_SKEW}
    claimed = await database[EVENTS_COLLECTION].find_one_and_update(condition, {"$set": {"watch_claim": token}},
                                                                    sort=[("at", 1)], projection={"_id": 1})
    return claimed is not None


def _token(change: Mapping[str, Any]) -> str:
    """The change's resume token as a string (names its event and its claim of a row)."""
    return str(change["_id"].get("_data", repr(change["_id"])) if isinstance(change["_id"], Mapping)
               else change["_id"])


def _own_update(change: Mapping[str, Any]) -> bool:
    description = change.get("updateDescription") or {}
    touched = [*description.get("updatedFields", {}), *description.get("removedFields", [])]
    if change["operationType"] == "replace":
        touched = list(change.get("fullDocument") or {})
    return any(path.startswith("_oe_") for path in touched)


def _post_image(change: Mapping[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
    if change["operationType"] == "replace" or before is None:
        return dict(change.get("fullDocument") or {})
    description = change.get("updateDescription") or {}
    after = stored_after(before, {"$set": description.get("updatedFields", {}),
                                  "$unset": {path: "" for path in description.get("removedFields", [])}})
    for truncated in description.get("truncatedArrays", []):
        parent, name = _parent(after, truncated["field"])
        if parent is not None:
            parent[name] = parent[name][: truncated["newSize"]]
    return after


def _update_changes(model: Any, change: Mapping[str, Any], before: Mapping[str, Any] | None,
                    after: Mapping[str, Any]) -> ChangeSet:
    if before is not None:
        return diff(_fields(model, before), _fields(model, after))
    description = change.get("updateDescription") or {}  # no pre-image: old values unknown
    updated = {path: FieldChange(None, value) for path, value in description.get("updatedFields", {}).items()}
    removed = {path: FieldChange(None, None) for path in description.get("removedFields", [])}
    return ChangeSet({**updated, **removed})


def _fields(model: Any, document: Mapping[str, Any]) -> dict[str, Any]:
    """``document``'s model fields as the model dumps them (a document the model refuses: as stored)."""
    plain = {k: v for k, v in document.items() if k != "_id" and k not in HIDDEN_FIELDS}
    try:
        fields: dict[str, Any] = model._from_document(plain)._fields_document()
    except ValueError:  # written by another program, not valid for the model: diff it as it is
        return {k: v for k, v in plain.items() if k in model.model_fields}
    return fields


def _parent(document: dict[str, Any], path: str) -> tuple[Any, str]:
    *parents, name = path.split(".")
    node: Any = document
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return (node, name) if isinstance(node, dict) and isinstance(node.get(name), list) else (None, name)


async def _images_on(database: Any, collection: str) -> None:
    try:
        await database.command("collMod", collection, changeStreamPreAndPostImages={"enabled": True})
    except Exception as error:  # the collection may not exist yet, or the server predates 6.0
        try:
            await database.create_collection(collection, changeStreamPreAndPostImages={"enabled": True})
        except Exception:  # noqa: BLE001 - reported below; the watcher still runs without pre-images
            logger.warning("could not turn on pre-images for %s (%r): updates will have old=None", collection, error)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
