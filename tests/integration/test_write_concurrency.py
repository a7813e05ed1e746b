"""Concurrent writes to one document (issue 10, item 1), on a real server with both drivers.

The guarantee (docs/guarantees.md): an event's ``old`` is always the value its write replaced,
and every event matches a write that modified the document. A write whose expectation no
longer holds raises ``ConflictError``, writes nothing, emits nothing, runs no after-hook and
leaves the instance as it was.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from pydantic import field_validator

from ormevents import ConflictError, EventModel, RecordingPublisher
from ormevents.hooks import after_update, after_write, before_update

pytestmark = pytest.mark.integration

AFTER: list[str] = []


class Tally(EventModel):
    total: int = 0
    items: list[str] = []
    label: str = ""
    marks: dict[str, int] = {}


class Profile(EventModel):
    name: str
    status: str = "new"
    email: str = ""
    tags: list[str] = []
    prefs: dict[str, Any] = {}
    score: int = 0
    nickname: str | None = None

    @before_update
    def stamp(self) -> None:
        self.email = self.email.lower()  # a before-hook edit that a conflict must undo

    @after_write
    def noted(self) -> None:
        AFTER.append(self.name)


class Ledger(EventModel):
    id: uuid.UUID | None = None
    amount: Decimal
    at: datetime
    day: date
    ref: uuid.UUID


@pytest.fixture(autouse=True)
def clear_after() -> None:
    AFTER.clear()


def _step(doc: Tally, worker: int, step: int) -> str:
    """One write of the stress test: an increment, an append, or a replacement (+ a per-worker key)."""
    kind = ("inc", "append", "replace")[step % 3]
    if kind == "inc":
        doc.total += 1
    elif kind == "append":
        doc.items.append(f"{worker}:{step}")
    else:
        doc.label = f"{worker}:{step}"
        doc.marks[f"w{worker}"] = step
    return kind


def _chain(events: list[Any], path: str, initial: Any) -> tuple[Any, int, int]:
    """Follow ``path`` through the events from ``initial``: (last value, events on the chain, events).

    Each write replaces the value the previous one produced, so the (old, new) pairs must form
    one chain; an event whose ``old`` another event already replaced is off the chain.
    """
    pairs = [event.changes[path] for event in events if path in event.changes]
    successor: dict[str, Any] = {}
    for old, new in pairs:
        successor.setdefault(repr(old), new)
    value, on_chain = initial, 0
    while repr(value) in successor and on_chain <= len(pairs):
        value = successor[repr(value)]
        on_chain += 1
    return value, on_chain, len(pairs)


async def test_sixteen_writers_lose_nothing_and_every_old_was_replaced(recorder: RecordingPublisher) -> None:
    tally = await Tally.create()
    workers, steps = 16, 50
    conflicts = 0
    done: dict[str, int] = {"inc": 0, "append": 0, "replace": 0}

    async def writer(worker: int) -> None:
        nonlocal conflicts
        doc = await Tally.get(tally.id)
        assert doc is not None
        for step in range(steps):
            while True:
                kind = _step(doc, worker, step)
                try:
                    await doc.save()
                except ConflictError as error:
                    assert error.document_id == tally.id and error.paths, error
                    conflicts += 1
                    await doc.reload()
                    continue
                done[kind] += 1
                break

    await asyncio.gather(*(writer(w) for w in range(workers)))

    final = await Tally.get(tally.id)
    assert final is not None
    events = [e for e in recorder.events if e.object_id == tally.id and e.name == "tally.updated"]
    stale_total = 0
    replay: dict[str, Any] = {"total": 0, "items": [], "label": "", "marks": {}}
    paths = ["total", "items", "label", *(f"marks.w{w}" for w in range(workers))]
    report = []
    for path in paths:
        last, on_chain, total = _chain(events, path, replay.get(path))
        stale_total += total - on_chain
        report.append(f"{path}: {total - on_chain} of {total}")
        if path.startswith("marks."):
            replay["marks"][path.split(".", 1)[1]] = last
        else:
            replay[path] = last
    kept_items = len(final.items)
    print(f"{done['inc']} increments acknowledged, {final.total} kept; {done['append']} appends acknowledged, "
          f"{kept_items} kept; {conflicts} conflicts retried; events whose old had already been replaced: "
          f"{stale_total} of {len(events)}")
    assert final.total == done["inc"], f"{final.total} of {done['inc']} increments kept"
    assert sorted(final.items) == sorted({f"{w}:{s}" for w in range(workers) for s in range(1, steps, 3)}), (
        f"{kept_items} of {done['append']} appended items kept (array corrupted)")
    for w in range(workers):
        mine = [item for item in final.items if item.startswith(f"{w}:")]
        assert mine == [f"{w}:{s}" for s in range(1, steps, 3)], f"worker {w}'s appends out of order: {mine}"
    assert stale_total == 0, (
        f"events whose old had already been replaced: {stale_total} of {len(events)} ({'; '.join(report)})")
    document = final.model_dump(exclude={"id"})
    assert document == replay, f"final document {document} != replay of the events {replay}"
    assert len(events) == sum(done.values()), f"{len(events)} events for {sum(done.values())} acknowledged writes"


async def test_stale_write_raises_conflict_and_leaves_everything_as_it_was(
        recorder: RecordingPublisher, database: Any) -> None:
    first = await Profile.create(name="ann", email="a@x.io")
    stale = await Profile.get(first.id)
    assert stale is not None
    await first.update(status="active")
    AFTER.clear()
    events_before = len(recorder.events)
    stale.status = "banned"
    stale.email = "Mixed@X.io"
    before = stale.model_dump()
    with pytest.raises(ConflictError) as caught:
        await stale.save()
    assert caught.value.document_id == first.id and caught.value.paths == ("status",), caught.value
    assert "reload()" in str(caught.value)
    stored = await database["profiles"].find_one({"_id": first.id})
    assert stored["status"] == "active" and stored["email"] == "a@x.io", f"the stale write reached the database: {stored}"
    assert len(recorder.events) == events_before, f"{len(recorder.events) - events_before} event(s) for a refused write"
    assert AFTER == [], f"after-hooks ran for a refused write: {AFTER}"
    assert stale.model_dump() == before, "the instance changed (the before-hook's edit must be undone)"
    assert set(stale.changes.paths) == {"status", "email"}
    await stale.reload()
    assert (stale.status, stale.changes) == ("active", {})
    await stale.update(status="banned")
    assert recorder.events[-1].changes == {"status": ("active", "banned")}


async def test_writes_to_different_paths_both_succeed(recorder: RecordingPublisher, database: Any) -> None:
    doc = await Profile.create(name="ann")
    a, b = await Profile.get(doc.id), await Profile.get(doc.id)
    assert a is not None and b is not None
    a.status = "active"
    b.score = 5
    b.prefs["theme"] = "dark"
    await asyncio.gather(a.save(), b.save())
    stored = await database["profiles"].find_one({"_id": doc.id})
    assert (stored["status"], stored["score"], stored["prefs"]) == ("active", 5, {"theme": "dark"})


async def test_concurrent_appends_are_never_overwritten(recorder: RecordingPublisher, database: Any) -> None:
    doc = await Profile.create(name="ann", tags=["a"])
    a, b = await Profile.get(doc.id), await Profile.get(doc.id)
    assert a is not None and b is not None
    a.tags.append("from-a")
    await a.save()
    b.tags.append("from-b")
    with pytest.raises(ConflictError) as caught:
        await b.save()
    assert caught.value.paths == ("tags",)
    await b.reload()
    b.tags.append("from-b")
    await b.save()
    stored = await database["profiles"].find_one({"_id": doc.id})
    assert stored["tags"] == ["a", "from-a", "from-b"]
    assert [e.changes["tags"] for e in recorder.events[-2:]] == [
        (["a"], ["a", "from-a"]), (["a", "from-a"], ["a", "from-a", "from-b"])]


async def test_documents_written_by_other_programs_stay_writable(
        recorder: RecordingPublisher, database: Any) -> None:
    """Missing fields (model defaults), a lax-coerced type, None vs missing, paths below a missing dict."""
    _id = ObjectId()
    await database["profiles"].insert_one({"_id": _id, "name": "legacy", "score": "7", "nickname": None})
    doc = await Profile.get(_id)
    assert doc is not None and (doc.status, doc.score, doc.prefs, doc.nickname) == ("new", 7, {}, None)
    doc.status = "active"          # stored: missing
    doc.score += 1                 # stored: the string "7"
    doc.prefs["theme"] = "dark"    # stored: no prefs at all -> $set prefs.theme
    doc.nickname = "leg"           # stored: null
    await doc.save()
    stored = await database["profiles"].find_one({"_id": _id})
    assert (stored["status"], stored["score"], stored["prefs"], stored["nickname"]) == ("active", 8, {"theme": "dark"}, "leg")
    doc.prefs["theme"] = "light"
    doc.nickname = None
    await doc.save()
    other = await Profile.get(_id)
    assert other is not None
    await database["profiles"].update_one({"_id": _id}, {"$set": {"prefs": None}})
    other.prefs["lang"] = "en"     # prefs is now null in the database: refused cleanly, not a WriteError
    with pytest.raises(ConflictError) as caught:
        await other.save()
    assert caught.value.paths == ("prefs.lang",)


async def test_codec_values_compare_exactly_as_stored(recorder: RecordingPublisher) -> None:
    """Decimal, microsecond datetimes (stored in milliseconds), dates and UUIDs in the expectation."""
    at = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    ledger = await Ledger.create(amount=Decimal("10.50"), at=at, day=date(2024, 5, 1), ref=uuid.uuid4())
    for n in range(3):
        ledger.amount += Decimal("0.25")
        ledger.at += timedelta(microseconds=1001)
        ledger.day += timedelta(days=1)
        ledger.ref = uuid.uuid4()
        await ledger.save()
    loaded = await Ledger.get(ledger.id)
    assert loaded is not None
    loaded.amount = Decimal("1")
    loaded.at = at
    await loaded.save()
    assert recorder.events[-1].changes["amount"] == (Decimal("11.25"), Decimal("1"))


async def test_delete_of_a_changed_document_conflicts_and_deleted_carries_what_was_deleted(
        recorder: RecordingPublisher, database: Any) -> None:
    doc = await Profile.create(name="ann")
    stale = await Profile.get(doc.id)
    assert stale is not None
    await doc.update(status="active")
    with pytest.raises(ConflictError) as caught:
        await stale.delete()
    assert caught.value.paths == ("status",)
    assert await database["profiles"].count_documents({"_id": doc.id}) == 1
    assert recorder.names()[-1] == "profile.updated"
    await stale.reload()
    await stale.delete()
    deleted = recorder.events[-1]
    assert deleted.name == "profile.deleted" and deleted.data["status"] == "active"
    assert deleted.changes["status"] == ("active", None)


class Watched(EventModel):
    status: str = "new"

    @after_update(when="status")
    def seen(self) -> None:
        AFTER.append(self.status)


async def test_a_conflict_runs_no_after_hook_and_emits_nothing(recorder: RecordingPublisher) -> None:
    doc = await Watched.create()
    stale = await Watched.get(doc.id)
    assert stale is not None
    await doc.update(status="a")
    AFTER.clear()
    names = recorder.names()
    with pytest.raises(ConflictError):
        await stale.update(status="b")
    assert AFTER == [] and recorder.names() == names
    assert (stale.status, stale.changes) == ("new", {}), "a refused update() left its fields assigned"


class Normalised(EventModel):
    tags: list[str] = []
    prefs: dict[str, str] = {}

    @field_validator("tags")
    @classmethod
    def _sorted_lower(cls, tags: list[str]) -> list[str]:
        return sorted(tag.lower() for tag in tags)

    @field_validator("prefs")
    @classmethod
    def _lower_keys(cls, prefs: dict[str, str]) -> dict[str, str]:
        return {key.lower(): value for key, value in prefs.items()}


async def test_fields_a_validator_normalised_on_load_are_written_and_expected_whole(
        recorder: RecordingPublisher, database: Any) -> None:
    """Stored ``["b", "A"]`` reads as ``["a", "b"]``: an item path (``tags.1``) names a different
    item in the stored list, so the expectation and the write are the whole stored field."""
    collection = database[Normalised.__ormevents__.collection]
    _id = ObjectId()
    await collection.insert_one({"_id": _id, "tags": ["b", "A"], "prefs": {"Theme": "dark"}})
    doc = await Normalised.get(_id)
    assert doc is not None and (doc.tags, doc.prefs) == (["a", "b"], {"theme": "dark"})
    doc.tags[1] = "c"
    doc.prefs["theme"] = "light"
    await doc.save()
    stored = await collection.find_one({"_id": _id})
    assert (stored["tags"], stored["prefs"]) == (["a", "c"], {"theme": "light"})
    assert recorder.events[-1].changes == {"tags.1": ("b", "c"), "prefs.theme": ("dark", "light")}
    doc.tags[0] = "b"  # stored and read agree now: a fine path again
    await doc.save()
    assert (await collection.find_one({"_id": _id}))["tags"] == ["b", "c"]
    await collection.update_one({"_id": _id}, {"$set": {"tags": ["C", "b"]}})  # another program, raw
    stale = await Normalised.get(_id)
    assert stale is not None
    await collection.update_one({"_id": _id}, {"$set": {"tags": ["B", "c"]}})
    stale.tags[0] = "x"
    with pytest.raises(ConflictError) as caught:
        await stale.save()
    assert caught.value.paths == ("tags",)
