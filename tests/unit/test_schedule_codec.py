"""The compact form of schedule entries: what a pending delayed event or retry costs Redis."""

from __future__ import annotations

import json

from ormevents import Event
from ormevents.delivery.celery.sending import dispatch_message, run_message
from ormevents.jobs.schedule_codec import pack, unpack


def test_a_dispatch_message_comes_back_whole_from_its_compact_form() -> None:
    event = Event(name="user.reminded", data={"n": 1})
    message = dispatch_message(event.to_dict(), {"max_retries": 2}, {"status_ttl": 60}, due=1.5)
    raw = pack(message)
    assert unpack(raw) == message
    stored = json.loads(raw)
    assert "i" not in stored and "model" not in stored["a"][0] and "changes" not in stored["a"][0]   # derived
    assert len(raw) < len(json.dumps(message, separators=(",", ":"))) - 100


def test_a_retry_keeps_what_cannot_be_derived() -> None:
    event = Event(name="user.updated", model="account", object_id=7, changes={"a": (1, 2)})
    message = run_message(event.to_dict(), "audit", 2, None, 1.0, run_id="r1", options={"status_ttl": 5})
    assert unpack(pack(message)) == message
    assert Event.from_dict(unpack(pack(message))["args"][0]) == event
    odd = {**message, "id": "given-by-hand"}
    assert unpack(pack(odd))["id"] == "given-by-hand"


def test_full_form_entries_and_other_dicts_are_read_as_they_are() -> None:
    legacy = {"task": "ormevents.dispatch", "args": [Event(name="a.b").to_dict(), None], "kwargs": {}, "id": "x"}
    assert unpack(json.dumps(legacy)) == legacy             # written by an earlier version
    assert unpack(pack({"n": 1})) == {"n": 1}
    assert unpack(pack({"task": "t"})) == {"task": "t"}
