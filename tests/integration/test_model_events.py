"""Events from writes: custom events, metadata, redaction and bad inputs, on a real server."""

from __future__ import annotations

from typing import Any

import pytest

import ormevents
from ormevents import (
    REDACTED,
    ConfigurationError,
    EventModel,
    InvalidEventNameError,
    NotInitializedError,
    RecordingPublisher,
    UnserializableValueError,
    dispatch_model_event,
    event_metadata,
)
from tests.integration.models import Account, User

pytestmark = pytest.mark.integration


async def test_custom_event_from_instance_with_delay(recorder: RecordingPublisher) -> None:
    user = await User.create(username="ann", email="a@x.io")
    event = await user.emit("status_changed", metadata={"reason": "test"}, delay=60)
    record = recorder.published[-1]
    assert record.event == event and record.delay == 60
    assert event.name == "user.status_changed" and event.object_id == user.id
    assert event.data["username"] == "ann" and event.metadata["reason"] == "test"
    with pytest.raises(InvalidEventNameError, match="Status Changed"):
        await user.emit("Status Changed")
    assert len(recorder.published) == 2


async def test_dispatch_model_event_like_the_seed(recorder: RecordingPublisher) -> None:
    user = await User.create(username="ann", email="a@x.io")
    event = await dispatch_model_event(None, User, "welcome_email", str(user.id), user, delay=60)
    assert event.name == "user.welcome_email" and recorder.published[-1].delay == 60
    by_name = await dispatch_model_event(recorder, "OrderItem", "created", 7, {"qty": 2})
    assert by_name.name == "order_item.created" and by_name.data == {"qty": 2}


async def test_event_metadata_context_flows_into_write_events(recorder: RecordingPublisher) -> None:
    with event_metadata(actor="admin", correlation_id="c-1"):
        user = await User.create(username="ann", email="a@x.io")
        async with event_metadata(actor="system"):
            await user.update(status="active")
    await user.update(status="banned")
    created, updated, banned = recorder.events
    assert created.metadata == {"actor": "admin", "correlation_id": "c-1"}
    assert updated.metadata == {"actor": "system", "correlation_id": "c-1"}
    assert banned.metadata == {}


async def test_sensitive_values_are_redacted_in_events_and_repr(recorder: RecordingPublisher, database: Any) -> None:
    account = await Account.create(email="a@x.io", password_hash="h1", api_key="k1", address={"city": "P", "secret_code": "s1"})
    stored = await database["accounts"].find_one({"_id": account.id})
    assert (stored["password_hash"], stored["api_key"]) == ("h1", "k1")  # stored as is
    created = recorder.events[-1]
    assert created.data["password_hash"] == REDACTED and created.data["api_key"] == REDACTED
    assert created.data["address"] == {"city": "P", "zip": "", "secret_code": REDACTED}
    assert created.changes["password_hash"] == (REDACTED, REDACTED)
    assert created.changes["address"] == (None, {"city": "P", "zip": "", "secret_code": REDACTED})
    await account.update(password_hash="h2")
    assert recorder.events[-1].changes == {"password_hash": (REDACTED, REDACTED)}  # the fact of a change is kept
    account.address.secret_code = "s2"  # type: ignore[union-attr]  # set above
    await account.save()
    assert recorder.events[-1].changes == {"address.secret_code": (REDACTED, REDACTED)}
    text = repr(account) + str(account)
    for secret in ("h2", "k1", "s2"):
        assert secret not in text
    assert "a@x.io" in text and REDACTED in text
    assert "h2" not in recorder.events[-1].to_json()


class Loose(EventModel):
    model_config = {"arbitrary_types_allowed": True}
    payload: Any = None


async def test_unserializable_value_raises_before_anything_is_written(
    recorder: RecordingPublisher, database: Any
) -> None:
    with pytest.raises(UnserializableValueError, match="'data.payload'"):
        await Loose.create(payload=object())
    assert await database["looses"].count_documents({}) == 0
    item = await Loose.create(payload={"ok": 1})
    item.payload = {"bad": {1, object()}}
    with pytest.raises(UnserializableValueError, match="payload.bad"):
        await item.save()
    assert (await database["looses"].find_one({"_id": item.id}))["payload"] == {"ok": 1}
    assert recorder.names() == ["loose.created"]


async def test_using_models_before_init_raises_clear_error() -> None:
    await ormevents.close()
    with pytest.raises(NotInitializedError, match="call `await ormevents.init"):
        await User.create(username="a", email="b")
    with pytest.raises(NotInitializedError):
        await User.find_one({})


async def test_dispatch_model_event_rejects_a_mismatched_instance(recorder: RecordingPublisher) -> None:
    user = await User.create(username="ann", email="a@x.io")
    other = RecordingPublisher()
    event = await dispatch_model_event(other, "User", "welcome_email", user.id, user)
    assert other.events == [event] and event.object_id == user.id   # the bus given is the bus used
    with pytest.raises(ConfigurationError, match="does not match the instance, a User"):
        await dispatch_model_event(None, "Customer", "x", user.id, user)
    with pytest.raises(ConfigurationError, match="is not the instance's id"):
        await dispatch_model_event(None, User, "x", "someone-else", user)
    assert event not in recorder.events
