"""``Event`` in pydantic's JSON mode (issue 10, item 7): ``model_dump_json()`` and
``model_dump(mode="json")`` work with every value the codec carries, so an Event can be returned
from a FastAPI endpoint; the form is the wire form of :meth:`Event.to_dict`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from bson import ObjectId

from ormevents import Event
from ormevents.jobs.status import EventStatus

OID = ObjectId("65f1a2b3c4d5e6f708192a3b")
EVERY_VALUE = {
    "oid": OID, "at": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "day": date(2024, 5, 1),
    "price": Decimal("10.50"), "ref": uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
    "blob": b"\xff\x00raw", "tagged": {"$oid": "not an id"}, "nested": [{"oid": OID}], "n": 1.5, "none": None,
}


def _event() -> Event:
    return Event(name="user.updated", object_id=OID, data=EVERY_VALUE,
                 changes={"price": (Decimal("1"), Decimal("10.50")), "oid": (None, OID)}, metadata={"by": OID})


def test_model_dump_json_is_the_wire_form() -> None:
    event = _event()
    failures = []
    try:
        text = event.model_dump_json()
    except Exception as error:  # the figure for the closing note: which call failed, and how
        failures.append(f"model_dump_json: {type(error).__name__}")
        text = "{}"
    try:
        dumped = event.model_dump(mode="json")
    except Exception as error:
        failures.append(f"model_dump(mode='json'): {type(error).__name__}")
        dumped = {}
    assert not failures, f"JSON mode fails on codec values: {failures}"
    wire = event.to_dict()
    parsed = json.loads(text)
    assert json.loads(json.dumps(dumped)) == parsed
    for key in ("object_id", "data", "changes", "metadata", "name", "model", "action", "version"):
        assert parsed[key] == wire[key], key
    assert parsed["object_id"] == {"$oid": str(OID)} and parsed["data"]["tagged"] == {"$literal": {"$oid": "not an id"}}
    assert parsed["id"] == str(event.id)


def test_json_mode_round_trips_exactly() -> None:
    event = _event()
    assert Event.model_validate_json(event.model_dump_json()) == event
    assert Event.model_validate(event.model_dump()) == event  # python mode is untouched


def test_event_status_json_with_a_model_event() -> None:
    status = EventStatus(event_id="x", state="dispatched", event=_event())
    assert json.loads(status.model_dump_json())["event"]["object_id"] == {"$oid": str(OID)}


def test_python_mode_keeps_tagged_dicts_and_from_dict_decodes_them() -> None:
    """docs/events.md: ``model_validate`` (Python mode) leaves a parsed JSON-mode dict's tags as
    dicts, since event data may hold such a dict; ``from_dict`` is the way back for that form."""
    event = _event()
    wire = event.model_dump(mode="json")
    kept = Event.model_validate(wire)
    assert kept.object_id == {"$oid": str(OID)} and kept.data["at"] == {"$date": EVERY_VALUE["at"].isoformat()}
    assert Event.from_dict(wire) == event
    assert Event.from_dict(event.to_dict()) == event
