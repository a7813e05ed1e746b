"""What an event's ``data`` carries (``event_data``), on a real server: the changed fields of an
update by default, the fields a model names as well, or the whole document (issue 14, scenario 10)."""

from __future__ import annotations

import pytest

from ormevents import REDACTED, EventModel, EventModelConfig, RecordingPublisher
from tests.integration.models import Account, User

pytestmark = pytest.mark.integration


class Profile(EventModel):
    model_config = EventModelConfig(event_data=("email", "plan"))
    email: str
    plan: str = "free"
    status: str = "new"
    notes: str = "x" * 1000


class Whole(EventModel):
    model_config = EventModelConfig(event_data="document")
    email: str
    status: str = "new"


async def test_an_update_carries_the_id_and_the_changed_fields_and_other_events_the_document(
        recorder: RecordingPublisher) -> None:
    user = await User.create(username="ann", email="a@x.io", address={"city": "P"})
    await user.update(status="active", tags=["a"])
    user.address.city = "Q"  # type: ignore[union-attr]  # set above
    await user.save()
    await user.delete()
    created, updated, nested, deleted = recorder.events
    whole = {"id": user.id, "username": "ann", "email": "a@x.io", "status": "active",
             "address": {"city": "Q", "zip": "", "secret_code": REDACTED}, "tags": ["a"], "prefs": {}}
    assert created.data == {**whole, "status": "inactive", "tags": [], "address": {**whole["address"], "city": "P"}}
    assert updated.data == {"id": user.id, "status": "active", "tags": ["a"]}
    assert updated.changes == {"status": ("inactive", "active"), "tags": ([], ["a"])}
    assert nested.changes == {"address.city": ("P", "Q")}
    assert nested.data == {"id": user.id, "address": whole["address"]}  # a nested path: its top-level field
    assert deleted.data == whole


async def test_named_fields_ride_along_and_a_whole_document_model_sends_it_all(recorder: RecordingPublisher) -> None:
    profile = await Profile.create(email="a@x.io")
    await profile.update(status="paid")
    whole = await Whole.create(email="b@x.io")
    await whole.update(status="paid")
    custom = await profile.emit("updated")  # a custom event of that name: no changes, the document
    assert recorder.events[1].data == {"id": profile.id, "status": "paid", "email": "a@x.io", "plan": "free"}
    assert recorder.events[3].data == {"id": whole.id, "email": "b@x.io", "status": "paid"}
    assert custom.data == {"id": profile.id, "email": "a@x.io", "plan": "free", "status": "paid", "notes": "x" * 1000}


async def test_a_sensitive_changed_field_stays_redacted(recorder: RecordingPublisher) -> None:
    account = await Account.create(email="a@x.io", password_hash="h1", address={"city": "P", "secret_code": "s1"})
    await account.update(password_hash="h2")
    account.address.secret_code = "s2"  # type: ignore[union-attr]  # set above
    await account.save()
    assert recorder.events[1].data == {"id": account.id, "password_hash": REDACTED}
    assert recorder.events[2].data == {"id": account.id, "address": {"city": "P", "zip": "", "secret_code": REDACTED}}


async def test_bulk_per_document_updates_follow_the_same_rule(recorder: RecordingPublisher) -> None:
    await User.insert_many([User(username=name, email=f"{name}@x.io") for name in ("ann", "bob")])
    await Profile.insert_many([Profile(email="c@x.io")])
    recorder.clear()
    await User.update_many({}, {"$set": {"status": "active"}, "$push": {"tags": "t"}})
    await Profile.update_many({}, {"$set": {"status": "paid"}})
    users = {u.id: u for u in await User.find()}
    profile = (await Profile.find())[0]
    assert sorted((e.data["id"], tuple(sorted(e.data))) for e in recorder.events[:2]) == sorted(
        (user_id, ("id", "status", "tags")) for user_id in users)
    assert recorder.events[2].data == {"id": profile.id, "status": "paid", "email": "c@x.io", "plan": "free"}
