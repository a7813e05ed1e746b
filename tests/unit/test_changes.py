from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId

from ormevents.changes.diff import (
    ChangeSet,
    FieldChange,
    diff,
    lookup,
    update_document,
    values_equal,
)


def test_scalar_change_and_helpers() -> None:
    cs = diff({"status": "inactive", "name": "a"}, {"status": "active", "name": "a"})
    assert cs.paths == ("status",)
    assert cs["status"] == FieldChange("inactive", "active")
    assert cs.old("status") == "inactive" and cs.new("status") == "active"
    assert cs.has_changed("status") and not cs.has_changed("name")
    assert cs.old("name", "n/a") == "n/a"


def test_fields_name_each_top_level_field_once_in_document_order() -> None:
    cs = diff({"a": {"x": 1, "y": 1}, "b": 1, "c": [1]}, {"a": {"x": 2, "y": 2}, "b": 1, "c": [2]})
    assert cs.paths == ("a.x", "a.y", "c.0") and cs.fields == ("a", "c")
    assert ChangeSet().fields == ()


def test_nested_dicts_diff_by_dotted_path() -> None:
    cs = diff({"address": {"city": "Paris", "zip": "75"}}, {"address": {"city": "Lyon", "zip": "75"}})
    assert cs.as_pairs() == {"address.city": ("Paris", "Lyon")}
    assert cs.has_changed("address") and cs.has_changed("address.city")


def test_lists_of_equal_length_diff_per_item_else_whole() -> None:
    same_len = diff({"items": [{"qty": 1}, {"qty": 2}]}, {"items": [{"qty": 1}, {"qty": 3}]})
    assert same_len.as_pairs() == {"items.1.qty": (2, 3)}
    grown = diff({"tags": ["a"]}, {"tags": ["a", "b"]})
    assert grown.as_pairs() == {"tags": (["a"], ["a", "b"])}


def test_removed_and_added_keys() -> None:
    cs = diff({"meta": {"a": 1, "b": 2}}, {"meta": {"a": 1, "c": 3}})
    assert cs.as_pairs() == {"meta.c": (None, 3), "meta.b": (2, None)}
    assert update_document({"meta": {"a": 1, "c": 3}}, cs) == {"$set": {"meta.c": 3}, "$unset": {"meta.b": ""}}


def test_keys_mongo_cannot_address_report_the_parent_whole() -> None:
    cs = diff({"m": {"a.b": 1, "ok": 1}}, {"m": {"a.b": 2, "ok": 2}})
    assert cs.paths == ("m",)
    assert update_document({"m": {"a.b": 2, "ok": 2}}, cs) == {"$set": {"m": {"a.b": 2, "ok": 2}}}


def test_create_and_delete_report_every_field() -> None:
    assert diff(None, {"a": 1, "b": None}).as_pairs() == {"a": (None, 1), "b": (None, None)}
    assert diff({"a": 1}, None).as_pairs() == {"a": (1, None)}


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, True, False),
        (1, 1.0, False),
        (Decimal("1.0"), 1, False),
        (Decimal("1.0"), Decimal("1.00"), True),
        (datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC), True),
        (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC), False),
        (ObjectId("65f1a2b3c4d5e6f708192a3b"), "65f1a2b3c4d5e6f708192a3b", False),
        ([1, {"a": 1}], [1, {"a": 1}], True),
        ([1, {"a": 1}], [1, {"a": True}], False),
        (None, None, True),
    ],
)
def test_type_aware_equality(a: object, b: object, equal: bool) -> None:
    assert values_equal(a, b) is equal


def test_changeset_is_immutable_value() -> None:
    cs = diff({"a": 1}, {"a": 2})
    assert cs == ChangeSet({"a": FieldChange(1, 2)})
    with pytest.raises(TypeError):
        cs["a"] = FieldChange(0, 0)  # type: ignore[index]  # proving immutability
    assert "a" in repr(cs)


def test_lookup_walks_dicts_and_lists() -> None:
    doc = {"items": [{"qty": 1}], "a": {"b": None}}
    assert lookup(doc, "items.0.qty") == 1
    assert lookup(doc, "items.5.qty", "x") == "x"
    assert lookup(doc, "a.b", "x") is None


@pytest.mark.parametrize(("old", "new"), [
    ({"a": [1, 2]}, {"a": [1, 2.0]}),                       # equal by ==, another type inside a list
    ({"a": {"x": 1, "y": 1.0}}, {"a": {"y": 1, "x": 1.0}}),  # equal by ==, types swapped between keys
    ({"a": {"b": True}}, {"a": {"b": 1}}),
    ({"a": [Decimal("1")]}, {"a": [1]}),
])
def test_values_equal_by_eq_but_of_another_type_are_changes(old: dict[str, Any], new: dict[str, Any]) -> None:
    changes = diff(old, new)
    assert changes, f"{old} -> {new} is a change (the stored BSON type differs)"
    assert not values_equal(old, new)


def test_unchanged_leaves_shared_with_the_snapshot_are_skipped_and_a_change_is_still_found() -> None:
    shared = {"name": "x" * 10, "tags": ["a", "b"]}
    old = {**shared, "n": {"deep": [1, {"k": "v"}]}}
    new = {**shared, "n": {"deep": [1, {"k": "w"}]}}
    assert diff(old, new).as_pairs() == {"n.deep.1.k": ("v", "w")}
