"""Event history per document (issue 16) on SecantusDB with the outbox: every event a write
produced, in write order, with its exact diff, pending or sent, redacted fields redacted, kept
for the model's retention (also after a delete); the state rebuilt from it; typed errors."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pytest

import ormevents
from ormevents import (
    EventModel,
    EventModelConfig,
    InvalidIdError,
    ModelDefinitionError,
    Sensitive,
)
from ormevents.errors import InvalidFilterError

pytestmark = pytest.mark.integration


class Ledger(EventModel):
    _collection = "ledgers"
    model_config = EventModelConfig(history_days=30)
    owner: str
    balance: int = 0
    tags: list[str] = []
    pin: Annotated[str, Sensitive()] = "0000"


class Note(EventModel):
    _collection = "notes"
    model_config = EventModelConfig(history_days=None)
    text: str


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


@pytest.fixture
async def outbox(database: Any, redis_uri: str) -> AsyncIterator[Any]:
    await ormevents.init(database=database, redis_uri=redis_uri,
                         event_config={"queue_name": f"hist{uuid.uuid4().hex[:8]}:events"})
    yield database
    await ormevents.close()


async def test_history_lists_every_write_in_order_with_its_diff_pending_or_sent(outbox: Any) -> None:
    ledger = await Ledger.create(owner="ann")
    await ledger.update(balance=10)
    await ledger.update(balance=25, tags=["vip"], pin="1234")
    pending = await ledger.history()  # some may still be in the document's outbox: listed all the same
    await ormevents.flush(cleanup=True)
    await ledger.update(balance=5)
    await ledger.emit("audited", data={"by": "bob"})
    await ormevents.flush(cleanup=True)
    await ledger.delete()
    await ormevents.flush(cleanup=True)

    entries = await Ledger.history(ledger.id)
    assert [e.name for e in entries] == ["ledger.created", "ledger.updated", "ledger.updated", "ledger.updated",
                                         "ledger.audited", "ledger.deleted"]
    assert [e.id for e in pending] == [e.id for e in entries[:3]]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries) and not any(e.pending for e in entries)
    assert entries[0].changes == {"owner": (None, "ann"), "balance": (None, 0), "tags": (None, []),
                                  "pin": ("[REDACTED]", "[REDACTED]")}
    assert entries[1].changes == {"balance": (0, 10)}
    assert entries[2].changes == {"balance": (10, 25), "tags": ([], ["vip"]), "pin": ("[REDACTED]", "[REDACTED]")}
    assert entries[3].changes == {"balance": (25, 5)}
    assert entries[4].changes == {} and (await ledger.history(full=True))[4].event.data["by"] == "bob"
    assert entries[5].changes["balance"] == (5, None)
    assert "1234" not in "".join(e.wire for e in entries)
    assert (await ledger.history(full=True))[0].event.object_id == ledger.id

    assert [e.name for e in await Ledger.history(str(ledger.id), limit=2)] == ["ledger.created", "ledger.updated"]
    later = await Ledger.history(ledger.id, since=entries[3].written_at)
    assert [e.id for e in later] == [e.id for e in entries[3:]]
    assert await Ledger.history(ledger.id, until=datetime(2000, 1, 1, tzinfo=UTC)) == []

    soon = naive(datetime.now(UTC)) + timedelta(days=29)  # history_days=30
    buckets = await outbox["_oe_history"].find({"c": "ledgers", "o": ledger.id}).to_list(None)
    assert buckets and all(naive(b["expire_at"]) > soon for b in buckets), buckets
    row = await outbox["_oe_events"].find_one({"c": "ledgers", "o": ledger.id, "n": "ledger.deleted"})
    assert naive(row["expire_at"]) > soon, row


async def test_a_document_created_again_with_its_id_keeps_one_history_across_both_lives(outbox: Any) -> None:
    first = await Note.create(text="a")
    await first.update(text="b")
    await ormevents.flush(cleanup=True)  # its created round inserted a bucket, with room left
    await first.delete()
    await ormevents.flush(cleanup=True)
    again = Note(id=first.id, text="c")
    await again.save()
    await ormevents.flush(cleanup=True)  # a second bucket with room: the readers merge both
    await again.update(text="d")  # appended to one of them
    await ormevents.flush(cleanup=True)
    entries = await Note.history(first.id)
    assert [(e.action, e.changes.get("text")) for e in entries] == [
        ("created", (None, "a")), ("updated", ("a", "b")), ("deleted", ("b", None)), ("created", (None, "c")),
        ("updated", ("c", "d"))]
    assert len({e.id for e in entries}) == 5
    buckets = await outbox["_oe_history"].find({"c": "notes", "o": first.id}).to_list(None)
    assert len(buckets) == 2 and sum(b["count"] for b in buckets) == 4


async def test_rebuild_folds_the_history_and_names_disagreements(outbox: Any) -> None:
    ledger = await Ledger.create(owner="ann", tags=["a"])
    await ledger.update(balance=7, pin="9999")
    await ledger.update(tags=["a", "b"])
    await ormevents.flush(cleanup=True)
    middle = (await ledger.history())[1].written_at

    rebuilt = await ledger.history.rebuild()
    assert rebuilt.agrees and rebuilt.events == 3, rebuilt
    assert rebuilt.document is not None and rebuilt.document["tags"] == ["a", "b"] and rebuilt.redacted == ("pin",)
    then = await Ledger.history.rebuild(ledger.id, at=middle)
    assert then.document is not None and then.document["balance"] == 7 and then.document["tags"] == ["a"]
    assert then.disagreements == {"tags": (["a"], ["a", "b"])}, then.disagreements

    await outbox["ledgers"].update_one({"_id": ledger.id}, {"$set": {"balance": 99}})  # a write around ormevents
    drifted = await Ledger.history.rebuild(ledger.id)
    assert drifted.disagreements == {"balance": (7, 99)} and not drifted.agrees


async def test_retention_forever_and_deleted_documents_keep_their_history(outbox: Any) -> None:
    note = await Note.create(text="a")
    await note.update(text="b")
    await note.delete()
    await ormevents.flush(cleanup=True)
    assert [e.action for e in await Note.history(note.id)] == ["created", "updated", "deleted"]
    bucket = await outbox["_oe_history"].find_one({"c": "notes", "o": note.id})
    assert bucket["expire_at"].year == 9999 and bucket["m"] == "note"
    row = await outbox["_oe_events"].find_one({"c": "notes", "o": note.id})
    assert "expire_at" not in row, row
    indexes = await outbox["_oe_history"].index_information()
    assert indexes["oe_ttl"]["expireAfterSeconds"] == 0 and "oe_history" in indexes, indexes
    assert indexes["oe_history_fill"]["key"] == [("c", 1), ("o", 1), ("count", 1)], "the open bucket is found by index"
    gone = await Note.history.rebuild(note.id)
    assert gone.document is None and gone.stored is None and gone.agrees


async def test_bulk_writes_keep_their_models_retention(outbox: Any) -> None:
    result = await Note.insert_many([Note(text="bulk")])
    await Note.update_many({"text": "bulk"}, {"$set": {"text": "bulk 2"}})
    await Note.update_many({"text": "bulk 2"}, {"$set": {"text": "bulk 3"}}, events="bulk")
    await ormevents.flush(cleanup=True)
    (note_id,) = result.inserted_ids
    assert [e.action for e in await Note.history(note_id)] == ["created", "updated"]
    bucket = await outbox["_oe_history"].find_one({"c": "notes", "o": note_id})
    assert bucket["expire_at"].year == 9999, bucket["expire_at"]   # forever, not the process default
    row = await outbox["_oe_events"].find_one({"n": "note.bulk_updated"})
    assert row is not None and "expire_at" not in row, row


async def test_bad_input_is_refused_before_any_read(outbox: Any) -> None:
    with pytest.raises(InvalidIdError, match=r"Ledger.history\('not-an-id'\)"):
        await Ledger.history("not-an-id")
    with pytest.raises(InvalidFilterError, match="since .* is after until"):
        await Ledger.history("5f5f5f5f5f5f5f5f5f5f5f5f", since=datetime(2026, 2, 1), until=datetime(2026, 1, 1))
    with pytest.raises(InvalidFilterError, match="limit"):
        await Ledger.history("5f5f5f5f5f5f5f5f5f5f5f5f", limit=0)
    with pytest.raises(ModelDefinitionError, match="history_days"):
        class Bad(EventModel):
            model_config = EventModelConfig(history_days=-1)
            name: str


def cli(*args: str) -> Any:
    from click.testing import CliRunner

    from ormevents.ops.cli import build

    return CliRunner().invoke(build(), list(args), env={"COLUMNS": "300"})


async def test_cli_prints_the_timeline_and_the_rebuild(outbox: Any, mongo_uri: str) -> None:
    ledger = await Ledger.create(owner="cli")
    await ledger.update(balance=3, pin="4321")
    await ormevents.flush(cleanup=True)
    where = ["--mongo-url", mongo_uri, "--database", outbox.name]

    table = await asyncio.to_thread(cli, "events", "history", "ledger", str(ledger.id), *where)
    assert table.exit_code == 0, table.output
    assert "ledger.created" in table.output and "balance: 0 -> 3" in table.output and "4321" not in table.output
    as_json = await asyncio.to_thread(cli, "events", "history", "ledgers", str(ledger.id), "--json", *where)
    rows = json.loads(as_json.output)
    assert [r["name"] for r in rows] == ["ledger.created", "ledger.updated"]
    assert rows[1]["changes"] == {"balance": [0, 3], "pin": ["[REDACTED]", "[REDACTED]"]}

    agrees = await asyncio.to_thread(cli, "events", "rebuild", "ledger", str(ledger.id), "--json", *where)
    assert agrees.exit_code == 0 and json.loads(agrees.output)["agrees"] is True, agrees.output
    await outbox["ledgers"].update_one({"_id": ledger.id}, {"$set": {"owner": "mallory"}})
    drift = await asyncio.to_thread(cli, "events", "rebuild", "ledger", str(ledger.id), *where)
    assert drift.exit_code == 1 and "owner" in drift.output and "mallory" in drift.output, drift.output

    unknown = await asyncio.to_thread(cli, "events", "history", "nosuchmodel", str(ledger.id), *where)
    assert unknown.exit_code == 1 and "no stored events of a model 'nosuchmodel'" in unknown.output, unknown.output
    missing = await asyncio.to_thread(cli, "events", "history", "ledger", "5f5f5f5f5f5f5f5f5f5f5f5f", *where)
    assert missing.exit_code == 1 and "no stored events" in missing.output
    bad = await asyncio.to_thread(cli, "events", "history", "ledger", "x", "--since", "yesterday", *where)
    assert bad.exit_code == 2 and "not a date" in bad.output, bad.output


async def test_delete_intents_and_pending_or_undue_rows_are_not_history_to_replay(outbox: Any) -> None:
    from ormevents.changes.diff import diff
    from ormevents.delivery.outbox.history import read_model
    from ormevents.delivery.outbox.records import EVENTS_COLLECTION, build_pending

    note = await Note.create(text="a")
    await ormevents.flush(cleanup=True)
    # what a writer killed between the intent row and delete_one leaves (model/deletes.py)
    event = note._event("deleted", note._fields_document(), diff(note._fields_document(), None))
    await outbox[EVENTS_COLLECTION].insert_one(build_pending(event, home=EVENTS_COLLECTION).row("notes", note.id,
                                                                                               intent=True))
    await note.emit("reminded", data={}, delay=3600)  # pending, due in an hour
    assert [e.name for e in await note.history()] == ["note.created", "note.reminded"]
    rebuilt = await note.history.rebuild()
    assert rebuilt.agrees and rebuilt.document == {"text": "a"}, rebuilt
    assert [e.name async for e in read_model(outbox, "notes")] == ["note.created"]  # both still pending
    await outbox["notes"].delete_one({"_id": note.id})  # had the delete happened, its intent is its event
    assert [e.name for e in await Note.history(note.id)] == ["note.created", "note.deleted", "note.reminded"]
    await outbox["notes"].insert_one({"_id": note.id, "text": "a"})
    await ormevents.flush(cleanup=True)  # the relay drops the intent; the delayed one goes to the Redis schedule
    reminded = await outbox[EVENTS_COLLECTION].find_one({"n": "note.reminded"})
    assert "pending_at" not in reminded and reminded["due"] > time.time() + 3000, reminded
    assert [e.name async for e in read_model(outbox, "notes")] == ["note.created"]  # sent, not yet due


async def test_read_model_yields_a_late_handed_event_in_write_order(outbox: Any) -> None:
    from ormevents import Event
    from ormevents.delivery.outbox.cleanup import Cleaner
    from ormevents.delivery.outbox.history import read_model
    from ormevents.delivery.outbox.history_store import BUCKET_SIZE
    from ormevents.delivery.outbox.records import build_pending

    records = [build_pending(Event(name="doc.updated", object_id="d1"), home="docs", key="d1")
               for _ in range(BUCKET_SIZE + 1)]
    cleaner = Cleaner(lambda: outbox, None)
    cleaner.add(records[:2] + records[3:])  # a full bucket
    await cleaner.run()
    cleaner.add([records[2]])  # handed over late (the relay after a crash): a bucket of its own
    await cleaner.run()
    assert [e.seq async for e in read_model(outbox, "docs")] == [r.seq for r in records]


async def test_a_custom_deleted_or_created_event_does_not_corrupt_the_rebuild(outbox: Any) -> None:
    note = await Note.create(text="a")
    await note.emit("deleted", data={"why": "custom"})
    await note.update(text="b")
    await note.emit("created", data={})
    await ormevents.flush(cleanup=True)
    rebuilt = await note.history.rebuild()
    assert rebuilt.agrees and rebuilt.document == {"text": "b"} and rebuilt.events == 4, rebuilt
