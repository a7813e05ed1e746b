"""Bulk and query writes (issue 13) on a real server: every operator's per-document diffs, bulk
and off modes, bad input refused before any write, hooks and conditions, and the outbox path
(events recorded with each document's write, exact under concurrent calls)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

import ormevents
from ormevents import EventModel, InvalidUpdateError, RecordingPublisher, hooks_disabled
from ormevents.changes.conditions import build_condition
from ormevents.events.patterns import Pattern
from ormevents.handlers.registry import Handler
from ormevents.hooks import after_update, before_update
from ormevents.model import bulk_common, bulk_others
from tests.integration.models import CALLS, Member, Tracked

pytestmark = pytest.mark.integration


class Hooked(EventModel):
    _collection = "hooked"
    name: str
    status: str = "new"

    @before_update
    def shout(self) -> None:
        self.name = self.name.upper()

    @after_update(when="status")
    def noted(self) -> None:
        CALLS.append(f"after_update {self.status} {self.saved_changes.old('status')}")


async def _members(rec: RecordingPublisher, *names: str, **fields: Any) -> list[Member]:
    result = await Member.insert_many([Member(name=name, **fields) for name in names])
    assert len(result.inserted_ids) == len(names) and result.events == len(names)
    rec.clear()
    return [m for m in await Member.find(sort="name")]


def _changes(rec: RecordingPublisher) -> dict[str, dict[str, tuple[Any, Any]]]:
    return {e.data["name"]: dict(e.changes) for e in rec.events if e.name == "member.updated"}


@pytest.mark.parametrize(("update", "expected"), [
    ({"$set": {"status": "on", "place.city": "Oslo"}}, {"status": ("new", "on"), "place.city": ("", "Oslo")}),
    ({"$unset": {"nick": ""}}, {"nick": ("x", None)}),
    ({"$inc": {"visits": 2}}, {"visits": (1, 3)}),
    ({"$push": {"tags": "c"}}, {"tags": (["a", "b"], ["a", "b", "c"])}),
    ({"$push": {"tags": {"$each": ["z", "y"], "$position": 0, "$slice": 3}}}, {"tags": (["a", "b"], ["z", "y", "a"])}),
    ({"$pull": {"tags": "a"}}, {"tags": (["a", "b"], ["b"])}),
    ({"$pull": {"tags": {"$in": ["a", "b"]}}}, {"tags": (["a", "b"], [])}),
    ({"$addToSet": {"tags": {"$each": ["a", "q"]}}}, {"tags": (["a", "b"], ["a", "b", "q"])}),
    ({"$set": {"prefs.theme.dark": True}}, {"prefs.theme": (None, {"dark": True})}),
    ({"$rename": {"nick": "status"}}, {"status": ("new", "x"), "nick": ("x", None)}),
])
async def test_each_operator_gives_the_exact_per_document_diff(
        rec: RecordingPublisher, db: Any, update: dict[str, Any], expected: dict[str, Any]) -> None:
    await _members(rec, "ann", "bob", visits=1, tags=["a", "b"], nick="x")
    result = await Member.update_many({"name": {"$in": ["ann", "bob"]}}, update)
    assert (result.matched_count, result.modified_count, result.events) == (2, 2, 2)
    changes = _changes(rec)
    assert changes["ann"] == changes["bob"] == {k: tuple(v) for k, v in expected.items()}
    for member in await Member.find():  # the database holds the event's "new" values
        stored = member.model_dump()
        for path, (_, new) in expected.items():
            node: Any = stored
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            assert node == new, (path, stored)


async def test_current_date_writes_the_time_of_the_call(rec: RecordingPublisher) -> None:
    await _members(rec, "ann")
    before = datetime.now(UTC)
    await Member.update_one({"name": "ann"}, {"$currentDate": {"seen_at": True}})
    [event] = rec.events
    old, new = event.changes["seen_at"]
    assert old is None and before.replace(microsecond=0) <= new <= datetime.now(UTC)
    assert (await Member.find_one({"name": "ann"})).seen_at == new  # type: ignore[union-attr]


async def test_bad_updates_raise_before_any_write(rec: RecordingPublisher, db: Any) -> None:
    await _members(rec, "ann")
    for update, named in [({"$mul": {"visits": 2}}, "$mul"), ({"status": "x"}, "wrap it"),
                          ({"$set": {"nope": 1}}, "'nope'"), ({"$set": {"place.street": "x"}}, "place.street"),
                          ({"$inc": {"visits": "1"}}, "takes a number"), ({"$set": {"_id": 1}}, "id"),
                          ({"$set": {"tags": []}, "$push": {"tags": "x"}}, "conflicts"), ({}, "non-empty"),
                          ({"$pull": {"tags": {"$gt": "a"}}}, "$pull")]:
        with pytest.raises(InvalidUpdateError, match=named.replace("$", r"\$")):
            await Member.update_many({}, update)
    with pytest.raises(InvalidUpdateError, match="events="):
        await Member.update_many({}, {"$set": {"status": "x"}}, events="some")  # type: ignore[arg-type]
    with pytest.raises(InvalidUpdateError, match="visits"):  # the model refuses the result: nothing written
        await Member.update_many({}, {"$set": {"visits": "many"}})
    assert rec.events == [] and (await db.members.find_one())["status"] == "new"


@pytest.mark.parametrize("events", ["per_document", "bulk", "off"])
async def test_an_update_mongodb_refuses_for_a_stored_null_is_refused_in_every_mode(
        rec: RecordingPublisher, db: Any, events: str) -> None:
    """Review 13 #6: ``$inc`` / ``$pull`` of a field stored as null (ormevents stores ``None`` so)."""
    await _members(rec, "ann")
    for update in ({"$inc": {"score": 1}}, {"$pull": {"nick": "x"}}):
        with pytest.raises(InvalidUpdateError, match="null|refused"):
            await Member.update_many({}, update, events=events)
    assert rec.events == [] and (await db.members.find_one())["score"] is None


@pytest.mark.parametrize("events", ["bulk", "off"])
async def test_bulk_and_off_modes_check_values_against_the_field_types(
        rec: RecordingPublisher, db: Any, events: str) -> None:
    """Review 13 #5: the update sent as given is checked against the model's types first."""
    await _members(rec, "ann")
    for update in ({"$set": {"visits": "many"}}, {"$push": {"tags": 5}}, {"$set": {"place": {"city": 1}}},
                   {"$inc": {"visits": 1.5}}, {"$addToSet": {"tags": {"$each": ["ok", None]}}}):
        with pytest.raises(InvalidUpdateError, match="not a valid value"):
            await Member.update_many({}, update, events=events)
    await Member.update_many({}, {"$set": {"prefs.any": object.__name__, "place.city": "Oslo"}}, events=events)
    assert (await Member.find_one({})).place.city == "Oslo" and rec.names() in ([], ["member.bulk_updated"])


async def test_nothing_matched_emits_nothing_and_counts_zero(rec: RecordingPublisher) -> None:
    for mode in ("per_document", "bulk", "off"):
        result = await Member.update_many({"name": "nobody"}, {"$set": {"status": "x"}}, events=mode)  # type: ignore[arg-type]
        assert (result.matched_count, result.modified_count, result.events) == (0, 0, 0)
        assert (await Member.delete_many({"name": "nobody"}, events=mode)).deleted_count == 0  # type: ignore[arg-type]
    assert rec.events == []


async def test_unchanged_documents_match_but_emit_nothing(rec: RecordingPublisher) -> None:
    await _members(rec, "ann", "bob")
    await Member.update_one({"name": "bob"}, {"$set": {"status": "on"}})
    rec.clear()
    result = await Member.update_many({}, {"$set": {"status": "on"}})
    assert (result.matched_count, result.modified_count) == (2, 1) and list(_changes(rec)) == ["ann"]


async def test_bulk_mode_carries_counts_ids_and_paths(rec: RecordingPublisher) -> None:
    members = await _members(rec, "ann", "bob", "cy")
    await Member.update_one({"name": "cy"}, {"$set": {"status": "on"}}, events="off")
    result = await Member.update_many({"name": {"$ne": "zed"}}, {"$set": {"status": "on"}, "$inc": {"visits": 1},
                                                                 "$rename": {"nick": "place.zip"}}, events="bulk")
    assert (result.matched_count, result.modified_count, result.events) == (3, 3, 1)
    [event] = rec.events
    assert event.name == "member.bulk_updated" and event.object_id is None
    assert event.data["matched"] == 3 and event.data["modified"] == 3
    assert event.data["paths"] == ["status", "visits", "nick", "place.zip"]
    assert sorted(map(str, event.data["ids"])) == sorted(str(m.id) for m in members)
    assert event.data["filter"] == {"name": {"$ne": "zed"}} and event.data["ids_truncated"] is False
    rec.clear()
    assert (await Member.delete_many({"name": "ann"}, events="bulk")).deleted_count == 1
    assert rec.names() == ["member.bulk_deleted"] and rec.events[0].data["deleted"] == 1
    rec.clear()
    await Member.insert_many([{"name": "dee"}], events="bulk")
    assert rec.names() == ["member.bulk_created"] and rec.events[0].data["inserted"] == 1
    assert "place" in rec.events[0].data["paths"] and len(rec.events[0].data["ids"]) == 1


async def test_off_mode_emits_nothing_and_says_so(rec: RecordingPublisher, caplog: pytest.LogCaptureFixture) -> None:
    await _members(rec, "ann")
    with caplog.at_level(logging.DEBUG, logger="ormevents.model.bulk"):
        result = await Member.update_many({}, {"$inc": {"visits": 1}}, events="off")
        await Member.insert_many([{"name": "bob"}], events="off")
        await Member.delete_many({}, events="off")
    assert result.modified_count == 1 and rec.events == [] and await Member.count() == 0
    assert sum("events='off'" in r.getMessage() for r in caplog.records) == 3


async def test_delete_many_emits_the_state_removed(rec: RecordingPublisher) -> None:
    await _members(rec, "ann", "bob", "cy", visits=3)
    result = await Member.delete_many({"name": {"$in": ["ann", "bob"]}})
    assert (result.deleted_count, result.events) == (2, 2)
    assert sorted(e.data["name"] for e in rec.events) == ["ann", "bob"]
    assert all(e.name == "member.deleted" and e.changes["visits"] == (3, None) for e in rec.events)
    assert [m.name for m in await Member.find()] == ["cy"]


async def test_find_one_and_update_returns_before_or_after(rec: RecordingPublisher) -> None:
    await _members(rec, "ann", visits=1)
    before = await Member.find_one_and_update({"name": "ann"}, {"$inc": {"visits": 1}})
    after = await Member.find_one_and_update({"name": "ann"}, {"$inc": {"visits": 1}}, return_document="after")
    assert before is not None and after is not None and (before.visits, after.visits) == (1, 3)
    assert [e.changes["visits"] for e in rec.events] == [(1, 2), (2, 3)]
    await after.update(status="on")  # the returned instance tracks the stored state
    assert await Member.find_one_and_update({"name": "nobody"}, {"$inc": {"visits": 1}}) is None


async def test_hooks_run_per_document_and_conditions_hold(rec: RecordingPublisher) -> None:
    await Hooked.insert_many([{"name": "ann"}, {"name": "bob", "status": "on"}])
    rec.clear()
    CALLS.clear()
    result = await Hooked.update_many({}, {"$set": {"status": "on"}}, hooks=True)
    assert result.modified_count == 1 and CALLS == ["after_update on new"]
    assert [(e.data["name"], e.changes) for e in rec.events] == [("ANN", {"status": ("new", "on"),
                                                                            "name": ("ann", "ANN")})]
    async with hooks_disabled(Hooked):
        await Hooked.update_many({}, {"$set": {"status": "off"}}, hooks=True)
    assert CALLS == ["after_update on new"]
    wants = Handler("on", Pattern.compile("hooked.updated"), print, False,
                    build_condition(when="status", changes_to="off"))
    assert [wants.wants(e) for e in rec.events] == [False, True, True]


async def test_insert_many_with_hooks_and_a_duplicate_key(rec: RecordingPublisher) -> None:
    CALLS.clear()
    await Tracked.insert_many([Tracked(name="a")], hooks=True)
    assert CALLS == ["before_create", "before_write", "after_create", "after_write", "after_commit"]
    existing = Member(name="x")
    await Member.insert_many([existing])
    assert not existing.is_new
    rec.clear()
    with pytest.raises(Exception, match="duplicate"):
        await Member.insert_many([Member(name="y"), Member(id=existing.id, name="dup"), Member(name="z")])
    assert rec.names() == ["member.created"] and sorted(m.name for m in await Member.find()) == ["x", "y"]
    with pytest.raises(InvalidUpdateError, match="saved already"):
        await Member.insert_many([existing])


async def test_insert_many_prepares_each_next_page_in_a_thread_in_order_with_the_callers_metadata(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_others, "PAGE", 3)  # 8 documents: 3 pages, the last two prepared in a thread
    with ormevents.event_metadata(request="r-1"):
        result = await Member.insert_many([Member(name=f"m{n}") for n in range(8)])
    assert len(result.inserted_ids) == 8 and result.events == 8
    assert [event.data["name"] for event in rec.events] == [f"m{n}" for n in range(8)]
    assert all(event.metadata == {"request": "r-1"} for event in rec.events)  # the context reached the thread
    assert sorted(m.name for m in await Member.find()) == [f"m{n}" for n in range(8)]


async def test_a_failed_page_stops_insert_many_and_the_page_prepared_after_it_gets_its_ids_back(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_others, "PAGE", 3)
    existing = Member(name="x")
    await Member.insert_many([existing])
    rec.clear()
    batch = [Member(name=name) for name in "abcd"] + [Member(id=existing.id, name="dup")] + \
        [Member(name=name) for name in "fghi"]
    with pytest.raises(Exception, match="duplicate"):
        await Member.insert_many(batch)
    assert rec.names() == ["member.created"] * 4 and sorted(m.name for m in await Member.find()) == [*"abcdx"]
    assert [m.is_new for m in batch] == [False] * 4 + [True] * 5
    assert [m.id is None for m in batch[6:]] == [True] * 3  # prepared while page 2 failed, never sent
    await Member.insert_many(batch[5:])  # insertable as they were
    assert sorted(m.name for m in await Member.find()) == [*"abcdfghix"]


def _slow_threaded_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 3; a page prepared in a worker thread takes 0.3 s (a large page's preparation)."""
    build = bulk_others._build

    def slow(*args: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.3)
        return build(*args)

    monkeypatch.setattr(bulk_others, "PAGE", 3)
    monkeypatch.setattr(bulk_others, "_build", slow)


async def test_a_page_still_being_prepared_when_the_one_before_fails_gives_its_ids_back_before_the_error(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_threaded_pages(monkeypatch)
    existing = Member(name="x")
    await Member.insert_many([existing])
    rec.clear()
    batch = [Member(name="a"), Member(id=existing.id, name="dup"), Member(name="c")] + [Member(name=n) for n in "def"]
    with pytest.raises(Exception, match="duplicate"):
        await Member.insert_many(batch)
    assert [m.id is None for m in batch[3:]] == [True] * 3
    await asyncio.sleep(0.4)  # no thread left to give them ids later
    assert [m.id is None for m in batch[3:]] == [True] * 3 and rec.names() == ["member.created"]


async def test_insert_many_cancelled_while_a_page_is_prepared_writes_whole_pages_only_with_their_events(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_threaded_pages(monkeypatch)
    batch = [Member(name=f"m{n}") for n in range(9)]
    task = asyncio.ensure_future(Member.insert_many(batch))
    await asyncio.sleep(0.15)  # page 1 written, page 2 being prepared
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = sorted(m.name for m in await Member.find())
    assert stored == [f"m{n}" for n in range(len(stored))] and len(stored) % 3 == 0
    assert sorted(e.data["name"] for e in rec.events) == stored
    assert [m.is_new for m in batch] == [False] * len(stored) + [True] * (9 - len(stored))
    await asyncio.sleep(0.4)
    assert all(m.id is None for m in batch[len(stored):])


async def test_insert_many_cancelled_while_the_next_page_fails_to_prepare_ends_cancelled(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    build = bulk_others._build

    def failing(model: Any, unit: Any, page: list[Any], emit: bool) -> Any:
        if threading.current_thread() is threading.main_thread():
            return build(model, unit, page, emit)
        time.sleep(0.3)
        raise RuntimeError("preparation failed")

    monkeypatch.setattr(bulk_others, "PAGE", 3)
    monkeypatch.setattr(bulk_others, "_build", failing)
    batch = [Member(name=f"m{n}") for n in range(6)]
    task = asyncio.ensure_future(Member.insert_many(batch))
    await asyncio.sleep(0.15)  # page 1 written, page 2 failing in its thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):  # the caller's cancellation, not the thread's error
        await task
    assert sorted(m.name for m in await Member.find()) == ["m0", "m1", "m2"] and len(rec.events) == 3


async def test_a_bad_document_stops_insert_many_after_the_pages_before_it_are_written(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_others, "PAGE", 3)
    documents: list[Any] = [{"name": f"m{n}"} for n in range(7)] + [{"name": 5}]  # page 3 holds the bad one
    with pytest.raises(Exception, match="name"):
        await Member.insert_many(documents)
    assert sorted(m.name for m in await Member.find()) == [f"m{n}" for n in range(6)] and len(rec.events) == 6
    twice = Member(name="twice")
    with pytest.raises(InvalidUpdateError, match="given twice"):
        await Member.insert_many([Member(name="y1"), Member(name="y2"), twice, twice])  # pages 1 and 2
    names = [m.name for m in await Member.find()]
    assert names.count("twice") == 1 and "y2" in names and not twice.is_new  # page 1 written, page 2 refused


async def test_update_many_over_several_pages_prepared_in_a_thread_gives_each_document_its_diff(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_common, "PAGE", 3)  # 8 documents: pages 2 and 3 prepared while the one before is written
    await _members(rec, *(f"m{n}" for n in range(8)))
    with ormevents.event_metadata(request="r-2"):
        await asyncio.gather(*(Member.update_many({}, {"$inc": {"visits": 1}}) for _ in range(2)))
    diffs: dict[str, list[tuple[Any, Any]]] = {}
    for event in rec.events:
        diffs.setdefault(event.data["name"], []).append(event.changes["visits"])
        assert event.metadata == {"request": "r-2"}
    assert {name: sorted(pairs) for name, pairs in diffs.items()} == {f"m{n}": [(0, 1), (1, 2)] for n in range(8)}
    assert [m.visits for m in await Member.find()] == [2] * 8


async def test_update_many_stops_at_a_page_its_update_cannot_apply_to_after_writing_the_pages_before(
        rec: RecordingPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_common, "PAGE", 3)
    await Member.insert_many([Member(name=f"m{n}", score=None if n == 7 else n) for n in range(8)])
    rec.clear()
    with pytest.raises(InvalidUpdateError, match="null"):
        await Member.update_many({}, {"$inc": {"score": 10}})  # page 3 holds m7, whose score is null
    assert sorted(_changes(rec)) == [f"m{n}" for n in range(6)]
    assert {m.name: m.score for m in await Member.find()} == {**{f"m{n}": n + 10 for n in range(6)}, "m6": 6,
                                                               "m7": None}


async def test_inside_a_transaction_events_wait_for_the_commit(rec: RecordingPublisher) -> None:
    await _members(rec, "ann", "bob")
    with pytest.raises(RuntimeError):
        async with ormevents.transaction():
            await Member.update_many({}, {"$inc": {"visits": 1}})
            await Member.delete_many({"name": "bob"})
            assert rec.events == []
            raise RuntimeError("abort")
    assert rec.events == [] and [m.visits for m in await Member.find()] == [0, 0]
    async with ormevents.transaction():
        await Member.update_many({}, {"$inc": {"visits": 1}})
        await Member.insert_many([{"name": "cy"}])
        assert rec.events == []
    assert sorted(rec.names()) == ["member.created", "member.updated", "member.updated"]
