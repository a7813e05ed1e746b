"""CRUD, change tracking and emitted events on a real server (PyMongo async and Motor)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from bson import Binary, Decimal128, ObjectId
from pydantic import ValidationError

from ormevents import (
    DocumentDeletedError,
    DocumentNotFoundError,
    EventModel,
    IdChangedError,
    InvalidIdError,
    RecordingPublisher,
)
from ormevents.hooks import before_delete, before_update
from tests.integration.models import Address, Rich, User

pytestmark = pytest.mark.integration


async def raw(database: Any, collection: str, _id: Any) -> dict[str, Any]:
    document = await database[collection].find_one({"_id": _id})
    assert document is not None
    return dict(document)


async def test_create_inserts_and_emits_created_with_every_field(recorder: RecordingPublisher, database: Any) -> None:
    user = await User.create(username="ann", email="a@x.io", address={"city": "Paris"})
    assert isinstance(user.id, ObjectId) and not user.is_new
    stored = await raw(database, "users", user.id)
    assert stored["username"] == "ann" and stored["address"]["city"] == "Paris"
    [event] = recorder.events
    assert event.name == "user.created" and event.object_id == user.id
    assert event.changes["username"] == (None, "ann")
    assert event.changes["status"] == (None, "inactive")
    assert event.data["id"] == user.id and event.data["email"] == "a@x.io"
    assert user.changes == {} and user.saved_changes.new("username") == "ann"


async def test_save_writes_only_changed_paths(recorder: RecordingPublisher, database: Any) -> None:
    user = await User.create(username="ann", email="a@x.io", address={"city": "Paris"}, tags=["a"], prefs={"k": 1, "old": 2})
    # Someone else writes a field we do not touch: a blind replace would lose it.
    await database["users"].update_one({"_id": user.id}, {"$set": {"email": "changed@elsewhere", "foreign": 1}})
    user.status = "active"
    user.address.city = "Lyon"  # type: ignore[union-attr]  # set above
    user.tags.append("b")
    del user.prefs["old"]
    assert set(user.changes.paths) == {"status", "address.city", "tags", "prefs.old"}
    await user.save()
    stored = await raw(database, "users", user.id)
    assert stored["email"] == "changed@elsewhere" and stored["foreign"] == 1
    assert stored["status"] == "active" and stored["address"]["city"] == "Lyon"
    assert stored["tags"] == ["a", "b"] and stored["prefs"] == {"k": 1}
    event = recorder.events[-1]
    assert event.name == "user.updated"
    assert event.changes == {
        "status": ("inactive", "active"),
        "address.city": ("Paris", "Lyon"),
        "tags": (["a"], ["a", "b"]),
        "prefs.old": (2, None),
    }
    assert user.changes == {} and user.saved_changes == event.changes


async def test_in_place_list_item_edit_is_detected(recorder: RecordingPublisher, database: Any) -> None:
    user = await User.create(username="ann", email="a@x.io", tags=["a", "b"])
    user.tags[1] = "c"
    await user.save()
    assert recorder.events[-1].changes == {"tags.1": ("b", "c")}
    assert (await raw(database, "users", user.id))["tags"] == ["a", "c"]


async def test_no_op_save_writes_nothing_and_emits_nothing(recorder: RecordingPublisher, database: Any) -> None:
    user = await User.create(username="ann", email="a@x.io")
    await database["users"].update_one({"_id": user.id}, {"$set": {"marker": 1}})
    user.status = "inactive"  # same value
    await user.save()
    await user.update(username="ann")
    assert recorder.names() == ["user.created"]


async def test_update_sets_and_saves_atomically_validated(recorder: RecordingPublisher) -> None:
    user = await User.create(username="ann", email="a@x.io")
    await user.update(status="banned", email="b@x.io")
    assert recorder.events[-1].changes == {"email": ("a@x.io", "b@x.io"), "status": ("inactive", "banned")}
    with pytest.raises(ValidationError, match="nickname"):
        await user.update(nickname="x")
    with pytest.raises(ValidationError, match="status"):
        await user.update(status=["not", "a", "string"], email="c@x.io")
    assert user.email == "b@x.io" and user.changes == {}
    assert len(recorder.events) == 2


async def test_invalid_values_raise_before_anything_is_written(recorder: RecordingPublisher, database: Any) -> None:
    with pytest.raises(ValidationError, match="unknown_field"):
        await User.create(username="ann", email="a@x.io", unknown_field=1)
    with pytest.raises(ValidationError, match="email"):
        await User.create(username="ann")
    user = await User.create(username="ann", email="a@x.io")
    with pytest.raises(ValidationError):
        user.status = 123  # type: ignore[assignment]  # bad input on purpose
    assert await database["users"].count_documents({}) == 1
    assert recorder.names() == ["user.created"]


async def test_delete_emits_last_state_and_blocks_later_writes(recorder: RecordingPublisher, database: Any) -> None:
    user = await User.create(username="ann", email="a@x.io")
    user.status = "pending-but-unsaved"
    await user.delete()
    assert await database["users"].count_documents({}) == 0
    event = recorder.events[-1]
    assert event.name == "user.deleted"
    assert event.data["status"] == "inactive"  # the persisted state, not the unsaved edit
    assert event.changes["username"] == ("ann", None)
    for write in (user.save(), user.update(status="x"), user.delete()):
        with pytest.raises(DocumentDeletedError, match="was deleted"):
            await write


async def test_write_to_document_removed_elsewhere_raises_and_emits_nothing(
    recorder: RecordingPublisher, database: Any
) -> None:
    user = await User.create(username="ann", email="a@x.io")
    await database["users"].delete_one({"_id": user.id})
    with pytest.raises(DocumentNotFoundError, match="no longer in the database"):
        await user.update(status="active")
    with pytest.raises(DocumentNotFoundError):
        await user.delete()
    never_saved = User(username="x", email="y")
    with pytest.raises(DocumentNotFoundError, match="never saved"):
        await never_saved.delete()
    assert recorder.names() == ["user.created"]


async def test_reads_get_find_one_find_count(recorder: RecordingPublisher) -> None:
    ann = await User.create(username="ann", email="a@x.io", status="active")
    await User.create(username="bob", email="b@x.io", status="active")
    await User.create(username="cid", email="c@x.io")
    assert await User.get(ann.id) == ann
    assert await User.get(str(ann.id)) == ann
    assert await User.get(ObjectId()) is None
    with pytest.raises(InvalidIdError, match="not a valid ObjectId"):
        await User.get("nope")
    assert (await User.find_one({"username": "bob"})).email == "b@x.io"  # type: ignore[union-attr]
    assert await User.find_one({"id": ann.id}) == ann
    names = [u.username for u in await User.find({"status": "active"}, sort="-username")]
    assert names == ["bob", "ann"]
    page = await User.find({}, sort=[("username", 1)], skip=1, limit=1)
    assert [u.username for u in page] == ["bob"]
    assert await User.count() == 3 and await User.count({"status": "active"}) == 2
    loaded = await User.get(ann.id)
    assert loaded is not None and loaded.changes == {}
    loaded.status = "banned"
    await loaded.save()
    assert recorder.events[-1].changes == {"status": ("active", "banned")}


async def test_loading_ignores_undeclared_stored_fields(recorder: RecordingPublisher, database: Any) -> None:
    oid = ObjectId()
    await database["users"].insert_one({"_id": oid, "username": "x", "email": "e", "legacy": True})
    user = await User.get(oid)
    assert user is not None and user.username == "x"
    await user.update(status="active")
    assert (await raw(database, "users", oid))["legacy"] is True


async def test_reload_discards_pending_changes(recorder: RecordingPublisher, database: Any) -> None:
    user = await User.create(username="ann", email="a@x.io")
    await database["users"].update_one({"_id": user.id}, {"$set": {"status": "remote"}})
    user.username = "local"
    await user.reload()
    assert (user.username, user.status, user.changes) == ("ann", "remote", {})


async def test_rich_values_round_trip_and_custom_id(recorder: RecordingPublisher, database: Any) -> None:
    at = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)
    ref = uuid.uuid4()
    item = await Rich.create(price=Decimal("10.50"), at=at, ref=ref, blob=b"\x01\x02")
    assert isinstance(item.id, uuid.UUID)
    stored = await raw(database, "riches", Binary.from_uuid(item.id))  # default: snake_case plural
    assert isinstance(stored["price"], Decimal128)
    loaded = await Rich.get(item.id)
    assert loaded is not None
    assert (loaded.price, loaded.at, loaded.ref, loaded.blob) == (Decimal("10.50"), at, ref, b"\x01\x02")
    assert loaded.changes == {}
    loaded.price = Decimal("10.500")  # numerically equal: not a change
    await loaded.save()
    assert recorder.names() == ["rich.created"]
    loaded.price = Decimal("10.75")
    await loaded.save()
    assert recorder.events[-1].changes == {"price": (Decimal("10.50"), Decimal("10.75"))}


async def test_nested_model_replaced_whole_or_field(recorder: RecordingPublisher) -> None:
    user = await User.create(username="ann", email="a@x.io")
    user.address = Address(city="Paris")
    await user.save()
    assert recorder.events[-1].changes["address"][0] is None
    user.address = Address(city="Paris", zip="75001")
    await user.save()
    assert recorder.events[-1].changes == {"address.zip": ("", "75001")}


async def test_changing_the_id_of_a_saved_instance_is_refused(recorder: RecordingPublisher, database: Any) -> None:
    ann = await User.create(username="ann", email="a@x.io")
    bob = await User.create(username="bob", email="b@x.io")
    published = len(recorder.published)
    ann.id = bob.id
    ann.status = "active"
    with pytest.raises(IdChangedError, match="id was changed from"):
        await ann.save()
    with pytest.raises(IdChangedError):
        await ann.delete()
    ann.id = ann_id = (await User.find_one({"username": "ann"})).id  # type: ignore[union-attr]
    with pytest.raises(IdChangedError):
        await ann.update(id=bob.id, status="banned")
    assert (ann.id, ann.status) == (ann_id, "active")                  # refused before anything was set
    stored = await database["users"].find_one({"_id": bob.id})
    assert (stored["username"], stored["status"]) == ("bob", "inactive")   # the other document is untouched

    hijacker = await Hijacker.create(name="h")
    victim = await Hijacker.create(name="v")
    Hijacker.target = victim.id
    try:
        hijacker.name = "changed"
        with pytest.raises(IdChangedError):
            await hijacker.save()                                      # a before-hook changed the id: refused
        hijacker.id = (await Hijacker.find_one({"name": "h"})).id       # type: ignore[union-attr]
        with pytest.raises(IdChangedError):
            await hijacker.delete()
    finally:
        Hijacker.target = None
    assert await Hijacker.count({}) == 2
    assert (await database["hijackers"].find_one({"_id": victim.id}))["name"] == "v"
    assert len(recorder.published) == published + 2                    # the two creates only


class Hijacker(EventModel):
    """A model whose before-hooks point it at another document (they must not get to write there)."""

    target: ClassVar[Any] = None
    name: str

    @before_update
    def repoint_update(self) -> None:
        if Hijacker.target is not None:
            self.id = Hijacker.target

    @before_delete
    def repoint_delete(self) -> None:
        if Hijacker.target is not None:
            self.id = Hijacker.target
