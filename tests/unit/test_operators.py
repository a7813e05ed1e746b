"""The update operators of bulk and query writes, validated and applied in Python (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from ormevents import InvalidUpdateError
from ormevents.changes.operators import apply, check_stored, parse_update
from ormevents.model.bulk_common import events_mode, known_path, plain_filter

NOW = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)


def run(document: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    return apply(document, parse_update(update, lambda path: True), NOW)


@pytest.mark.parametrize(("document", "update", "expected"), [
    ({"a": 1}, {"$set": {"b.c": 2}}, {"a": 1, "b": {"c": 2}}),
    ({"l": [{"x": 1}, {"x": 2}]}, {"$set": {"l.1.x": 9}}, {"l": [{"x": 1}, {"x": 9}]}),
    ({"a": {"b": 1, "c": 2}}, {"$unset": {"a.b": ""}}, {"a": {"c": 2}}),
    ({"a": 1}, {"$unset": {"zz.y": ""}}, {"a": 1}),
    ({}, {"$inc": {"n": 2}}, {"n": 2}),
    ({"n": None}, {"$inc": {"n": 1.5}}, {"n": 1.5}),
    ({"n": 1}, {"$inc": {"n": -3}}, {"n": -2}),
    ({}, {"$push": {"t": 1}}, {"t": [1]}),
    ({"t": [1, 2, 3]}, {"$push": {"t": {"$each": [4, 5], "$slice": -3}}}, {"t": [3, 4, 5]}),
    ({"t": [1, 2]}, {"$push": {"t": {"$each": [0], "$position": -1}}}, {"t": [1, 0, 2]}),
    ({"t": [1, 2]}, {"$push": {"t": {"$each": [], "$slice": 0}}}, {"t": []}),
    ({"t": [{"k": 1, "v": 2}, {"k": 2}]}, {"$pull": {"t": {"k": 1}}}, {"t": [{"k": 2}]}),
    ({"t": [1, 1.0, True]}, {"$pull": {"t": 1}}, {"t": [True]}),  # numbers by value, as MongoDB (review 13 #6)
    ({"t": [1, 2]}, {"$pull": {"t": 1.0}}, {"t": [2]}),
    ({"f": [1.0]}, {"$addToSet": {"f": 1}}, {"f": [1.0]}),
    ({"m": {}}, {"$pull": {"m.t": "x"}}, {"m": {}}),  # $pull of a missing field: no-op
    ({"t": [{"k": [1, 2]}, {"k": [3]}]}, {"$pull": {"t": {"k": 1}}}, {"t": [{"k": [3]}]}),  # array field holds it
    ({"t": ["a"]}, {"$set": {"t.3": "z"}}, {"t": ["a", None, None, "z"]}),  # padded (review 13 #7)
    ({"t": ["a"]}, {"$set": {"t.2.x": 1}}, {"t": ["a", None, {"x": 1}]}),
    ({"r": [{"x": 1, "y": 2}]}, {"$unset": {"r.0.x": ""}}, {"r": [{"y": 2}]}),
    ({"t": [1]}, {"$addToSet": {"t": 1}}, {"t": [1]}),
    ({"t": [{"a": 1}]}, {"$addToSet": {"t": {"$each": [{"a": 1}, {"a": 2}, {"a": 2}]}}}, {"t": [{"a": 1}, {"a": 2}]}),
    ({"a": 1}, {"$rename": {"a": "b.c"}}, {"b": {"c": 1}}),
    ({"b": 1}, {"$rename": {"a": "c"}}, {"b": 1}),
    ({}, {"$currentDate": {"at": {"$type": "date"}}}, {"at": NOW}),
])
def test_apply(document: dict[str, Any], update: dict[str, Any], expected: dict[str, Any]) -> None:
    before = repr(document)
    assert run(document, update) == expected
    assert repr(document) == before  # the input is never changed


@pytest.mark.parametrize(("document", "update", "message"), [
    ({"n": "x"}, {"$inc": {"n": 1}}, "not a number"),
    ({"t": "x"}, {"$push": {"t": 1}}, "not an array"),
    ({"a": 5}, {"$set": {"a.b": 1}}, "not a document"),
    ({"t": ["a"]}, {"$set": {"t.x": 1}}, "not an index"),
    ({"n": 2**63 - 1}, {"$inc": {"n": 1}}, "64-bit"),
    ({"n": -(2**63)}, {"$inc": {"n": -1}}, "64-bit"),
])
def test_apply_refuses_what_mongodb_refuses(document: dict[str, Any], update: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidUpdateError, match=message):
        run(document, update)


@pytest.mark.parametrize(("update", "message"), [
    (None, "non-empty dict"), ({"$set": {}}, "non-empty dict"), ({"$set": []}, "non-empty dict"),
    ({"$max": {"a": 1}}, "not supported"), ({"a": 1}, "wrap it"), ({"$set": {"a..b": 1}}, "not a field path"),
    ({"$set": {"id": 1}}, "id and ormevents"), ({"$set": {"_oe_outbox": 1}}, "id and ormevents"),
    ({"$inc": {"a": True}}, "takes a number"), ({"$currentDate": {"a": {"$type": "timestamp"}}}, "takes True"),
    ({"$push": {"a": {"$each": 1}}}, "takes \\$each"), ({"$push": {"a": {"$each": [], "$sort": 1}}}, "takes \\$each"),
    ({"$push": {"a": {"$each": [], "$slice": "1"}}}, "take ints"), ({"$addToSet": {"a": {"$each": [], "$position": 0}}}, "takes \\$each"),
    ({"$pull": {"a": {"$gte": 1}}}, "only a value"), ({"$set": {"a": 1}, "$unset": {"a.b": ""}}, "conflicts"),
    ({"$rename": {"a": "b"}, "$set": {"b": 1}}, "conflicts"),
    ({"$pull": {"a": {"s": {"$gt": 5}}}}, "only a value"), ({"$pull": {"a": {"x.y": 1}}}, "only a value"),
    ({"$pull": {"a": {"$in": [{"$gt": 1}]}}}, "only a value"), ({"$pull": {"a": {"x": [{"y": {"$ne": 1}}]}}}, "only a value"),
    ({"$set": {"t.$[]": 1}}, "positional"), ({"$set": {"t.$": 1}}, "positional"), ({"$inc": {"t.$[i].n": 1}}, "positional"),
])
def test_parse_refuses_bad_updates(update: Any, message: str) -> None:
    with pytest.raises(InvalidUpdateError, match=message):
        parse_update(update, lambda path: True)


@pytest.mark.parametrize("operator", ["$inc", "$push", "$addToSet", "$pull"])
def test_a_stored_null_is_refused_like_mongodb_does(operator: str) -> None:
    spec = parse_update({operator: {"n": 1}}, lambda path: True)
    with pytest.raises(InvalidUpdateError, match="stored value is null"):
        check_stored({"n": None}, spec)
    check_stored({}, spec)  # missing: MongoDB starts it


def test_parse_lists_paths_and_asks_the_model() -> None:
    asked: list[str] = []
    spec = parse_update({"$set": {"a": 1}, "$rename": {"b": "c"}}, lambda path: asked.append(path) or True)
    assert spec.paths == ("a", "b", "c") and asked == ["a", "b", "c"]
    with pytest.raises(InvalidUpdateError, match="declares no such field"):
        parse_update({"$set": {"x": 1}}, lambda path: False)


class Inner(BaseModel):
    city: str = ""


class Outer(BaseModel):
    id: int | None = None
    inner: Inner | None = None
    items: list[Inner] = []
    extra: dict[str, Any] = {}
    name: str = ""


@pytest.mark.parametrize(("path", "known"), [
    ("name", True), ("nope", False), ("id", False), ("inner.city", True), ("inner.town", False),
    ("items.0", True), ("items.0.city", True), ("extra.any.thing", True), ("name.deeper", True),
])
def test_known_path(path: str, known: bool) -> None:
    assert known_path(Outer, path) is known


def test_modes_and_filters() -> None:
    assert events_mode(None) == "per_document" and events_mode("off") == "off"
    with pytest.raises(InvalidUpdateError, match="events="):
        events_mode("all")
    assert plain_filter({"id": 1, "a": {"$gt": 2}}) == {"_id": 1, "a": {"$gt": 2}} and plain_filter(None) == {}
    with pytest.raises(InvalidUpdateError, match="filter"):
        plain_filter([("a", 1)])  # type: ignore[arg-type]
