from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from bson import Decimal128, ObjectId
from pydantic import BaseModel

from ormevents import Event, InvalidEventNameError, UnserializableValueError
from ormevents.events import codec


class Color(enum.Enum):
    RED = "red"


class Point(BaseModel):
    x: int
    when: datetime


def test_round_trip_is_exact_for_rich_values() -> None:
    value = {
        "oid": ObjectId(),
        "when": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "day": date(2024, 5, 1),
        "price": Decimal("10.50"),
        "uid": uuid.uuid4(),
        "raw": b"\x00\xff",
        "nested": [{"deep": Decimal("1E+3")}],
        "tag_like": {"$oid": "not an id"},
    }
    assert codec.loads(codec.dumps(value)) == value
    assert codec.loads(codec.dumps(value))["price"].as_tuple() == Decimal("10.50").as_tuple()


def test_to_plain_normalises_rich_inputs() -> None:
    moment = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    plain = codec.to_plain({"m": Point(x=1, when=moment), "c": Color.RED, "t": (1, 2), "d": Decimal128("2.5")})
    assert plain == {"m": {"x": 1, "when": datetime(2024, 1, 1, 10, tzinfo=UTC)}, "c": "red", "t": [1, 2], "d": Decimal("2.5")}
    assert codec.to_plain(datetime(2024, 1, 1)).tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {"b": object()}}, "'a.b'"),
        ({"a": [1, float("nan")]}, "'a.1'"),
        ({1: "x"}, "string keys"),
    ],
)
def test_unserializable_values_name_their_path(value: object, message: str) -> None:
    with pytest.raises(UnserializableValueError, match=message):
        codec.to_plain(value)


def test_event_defaults_and_json_round_trip() -> None:
    event = Event(
        name="user.updated",
        object_id=ObjectId(),
        data={"price": Decimal("1.10"), "at": datetime(2024, 1, 1, tzinfo=UTC)},
        changes={"status": ["inactive", "active"], "address.city": (None, "Lyon")},
        metadata={"actor": "admin"},
    )
    assert (event.model, event.action, event.version) == ("user", "updated", 1)
    assert event.created_at.tzinfo is UTC
    assert event.changes["status"] == ("inactive", "active")
    again = Event.from_json(event.to_json())
    assert again == event
    assert event.has_changed("address") and not event.has_changed("email")


def test_event_is_frozen() -> None:
    event = Event(name="user.created")
    with pytest.raises(Exception, match="frozen"):
        event.name = "user.deleted"  # type: ignore[misc]  # proving immutability


@pytest.mark.parametrize("name", ["User.created", "user", "user..created", "user.created!", "1user.created", "", "user.Created", 42])
def test_invalid_event_names_raise_typed_error(name: object) -> None:
    with pytest.raises(InvalidEventNameError, match="invalid event name"):
        Event(name=name)  # type: ignore[arg-type]  # bad input on purpose


def test_multi_segment_name_keeps_the_rest_as_action() -> None:
    event = Event(name="order.payment.completed")
    assert (event.model, event.action) == ("order", "payment.completed")


def test_unserializable_payload_raises_typed_error() -> None:
    with pytest.raises(UnserializableValueError, match="'data.x.1'"):
        Event(name="user.created", data={"x": {1, object()}})


def test_idempotency_key_is_stable_per_event_and_handler_and_bounded() -> None:
    from ormevents.events.patterns import Pattern
    from ormevents.handlers.registry import Handler

    event = Event(name="order.paid", data={"total": 5})
    again = Event.from_json(event.to_json())                                 # a redelivery, another worker
    handler = Handler("billing.charge", Pattern.compile("order.*"), print, is_async=False)
    keys = {event.idempotency_key("billing.charge"), again.idempotency_key("billing.charge"),
            event.idempotency_key(handler)}
    assert keys == {f"{event.id}:billing.charge"}, keys
    others = {event.idempotency_key("email.receipt"), Event(name="order.paid").idempotency_key("billing.charge")}
    assert len(others | keys) == 3, others                                    # another handler, another event
    long_name = "x" * 300
    long_key = event.idempotency_key(long_name)
    assert len(long_key) <= 255 and long_key == event.idempotency_key(long_name) != event.idempotency_key("y" * 300)
    with pytest.raises(TypeError, match="handler name"):
        event.idempotency_key(None)
