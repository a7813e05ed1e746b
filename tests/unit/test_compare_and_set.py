"""The compare-and-set conditions and the stored form (pure; see ormevents/model/compare_and_set.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from bson import Binary, Decimal128

from ormevents.model.compare_and_set import (
    conflicting_paths,
    expected_filter,
    stored_after,
    write_paths,
)

EXACT = {"$not": {"$type": "array"}}


def test_a_value_is_expected_exactly_and_a_list_as_a_whole() -> None:
    stored = {"n": 1, "tags": ["a", "b"], "address": {"city": "Paris"}, "none": None}
    assert expected_filter(stored, ["n"]) == {"n": {"$eq": 1, **EXACT}}
    assert expected_filter(stored, ["tags"]) == {"tags": {"$eq": ["a", "b"], "$not": {"$elemMatch": {"$eq": ["a", "b"]}}}}
    assert expected_filter(stored, ["tags.1"]) == {"tags.1": {"$eq": "b", **EXACT}}
    assert expected_filter(stored, ["address.city", "none"]) == {
        "address.city": {"$eq": "Paris", **EXACT}, "none": {"$eq": None, **EXACT}}


def test_a_missing_path_expects_its_parent_to_stay_an_object() -> None:
    assert expected_filter({"prefs": {"a": 1}}, ["prefs.b"]) == {
        "prefs.b": {"$exists": False}, "prefs": {"$type": "object", "$not": {"$type": "array"}}}
    assert expected_filter({}, ["prefs.b.c"]) == {"prefs": {"$exists": False}}
    assert expected_filter({"prefs": {}}, ["prefs.b.c"]) == {
        "prefs.b": {"$exists": False}, "prefs": {"$type": "object", "$not": {"$type": "array"}}}
    assert expected_filter({"prefs": 5}, ["prefs.b"]) == {"prefs.b": {"$exists": False}, "prefs": {"$eq": 5, **EXACT}}
    both = expected_filter({"prefs": {}}, ["prefs.a", "prefs.b"])
    assert set(both) == {"prefs.a", "prefs.b", "prefs"}


def test_codec_values_are_expected_in_their_bson_form() -> None:
    ref = uuid.uuid4()
    condition = expected_filter({"ref": ref, "price": Decimal("1.50")}, ["ref", "price"])
    assert condition["ref"]["$eq"] == Binary.from_uuid(ref)
    assert condition["price"]["$eq"] == Decimal128("1.50")


def test_stored_after_is_what_the_server_keeps_and_leaves_the_input_alone() -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    ref = uuid.uuid4()
    before = {"x": {"y": [1, {"z": 2}]}, "k": 1, "other": {"kept": True}}
    after = stored_after(before, {"$set": {"x.y.1.z": 3, "at": at, "ref": ref, "new.deep": 4}, "$unset": {"k": ""}})
    assert before == {"x": {"y": [1, {"z": 2}]}, "k": 1, "other": {"kept": True}}
    assert after["x"] == {"y": [1, {"z": 3}]} and "k" not in after and after["new"] == {"deep": 4}
    assert after["at"] == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)  # milliseconds, as stored
    assert after["ref"] == Binary.from_uuid(ref)
    assert after["other"] is before["other"]  # untouched parts are shared, not copied


def test_conflicting_paths_names_what_changed() -> None:
    stored = {"n": 1, "tags": ["a"], "prefs": {}}
    now = {"n": 2, "tags": ["a"], "prefs": None}
    assert conflicting_paths(now, stored, ["n", "tags", "prefs.x"]) == ("n", "prefs.x")
    assert conflicting_paths({"n": 1.0}, {"n": 1}, ["n"]) == ("n",)  # another BSON type counts
    assert conflicting_paths({}, {}, ["gone"]) == ()


def test_write_paths_widen_nested_paths_of_fields_stored_otherwise_than_read() -> None:
    """A validator normalised ``tags``/``prefs`` on load: their indexes and keys mean nothing in
    the stored form, so the whole field is written and expected; equal fields keep fine paths."""
    stored = {"tags": ["B", "a"], "prefs": {"Theme": "dark"}, "at": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
              "same": {"x": 1}}
    read = {"tags": ["a", "b"], "prefs": {"theme": "dark"}, "at": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
            "same": {"x": 1}, "new": {}}
    assert write_paths(stored, read, ["tags.1", "tags.0", "prefs.theme", "same.x", "new.k", "at", "n"]) == (
        "tags", "prefs", "same.x", "new", "at", "n")
