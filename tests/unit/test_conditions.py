from __future__ import annotations

import pytest
from pydantic import BaseModel

from ormevents import ModelDefinitionError
from ormevents.changes.conditions import (
    AnyOf,
    ChangeContext,
    Changed,
    ChangesTo,
    IsNow,
    Was,
    build_condition,
    check_paths,
)

CTX = ChangeContext.of(
    {"status": "new", "email": "a@x", "address": {"city": "Paris"}},
    {"status": "active", "email": "a@x", "address": {"city": "Lyon"}},
)


def test_each_condition_kind() -> None:
    assert Changed("status")(CTX) and not Changed("email")(CTX)
    assert Changed("address")(CTX) and Changed("address.city")(CTX)
    assert Was("status", "new")(CTX) and not Was("status", "active")(CTX)
    assert IsNow("status", "active")(CTX) and IsNow("email", "a@x")(CTX)
    assert ChangesTo("status", "active")(CTX) and not ChangesTo("email", "a@x")(CTX)
    assert Was("address", {"city": "Paris"})(CTX)
    assert Was("email", "a@x")(CTX)


def test_composition_with_and_or_not() -> None:
    assert (Changed("status") & IsNow("status", "active"))(CTX)
    assert not (Changed("status") & Changed("email"))(CTX)
    assert (Changed("email") | Changed("status"))(CTX)
    assert (~Changed("email"))(CTX)
    assert (Changed("status") & IsNow("status", "active")).paths() == {"status"}


@pytest.mark.parametrize(
    ("kwargs", "fires"),
    [
        ({"when": "status"}, True),
        ({"when": "email"}, False),
        ({"when": "status", "was": "new"}, True),
        ({"when": "status", "was": "banned"}, False),
        ({"when": "status", "is_now": "active"}, True),
        ({"when": "status", "changes_to": "active"}, True),
        ({"when": "status", "changes_to": "banned"}, False),
        ({"when": "email", "is_now": "a@x"}, False),
        ({"when": "email", "is_now": "a@x", "has_changed": False}, True),
        ({"when_any": ["email", "status"]}, True),
        ({"when_any": ["email", "username"]}, False),
        ({"condition": IsNow("status", "active") & ~Changed("email")}, True),
        ({"when": "status", "condition": Changed("email")}, False),
    ],
)
def test_build_condition_keywords(kwargs: dict[str, object], fires: bool) -> None:
    condition = build_condition(**kwargs)  # type: ignore[arg-type]  # table of keyword sets
    assert condition is not None and condition(CTX) is fires


def test_build_condition_rejects_bad_combinations() -> None:
    assert build_condition() is None
    with pytest.raises(ModelDefinitionError, match="not both"):
        build_condition(when="a", when_any=["b"])
    with pytest.raises(ModelDefinitionError, match="need when"):
        build_condition(was="x")
    with pytest.raises(ModelDefinitionError, match="takes a Condition"):
        build_condition(condition="status")  # type: ignore[arg-type]  # bad input on purpose
    assert isinstance(build_condition(when_any=["a", "b"]), AnyOf)


class Address(BaseModel):
    city: str


class Person(BaseModel):
    status: str
    address: Address | None = None
    extra: dict[str, int] = {}


def test_check_paths_validates_against_the_model() -> None:
    check_paths(Changed("address.city") & Changed("extra.anything") & Changed("status"), Person, "hook")
    with pytest.raises(ModelDefinitionError, match="unknown field 'stauts'"):
        check_paths(Changed("stauts"), Person, "hook")
    with pytest.raises(ModelDefinitionError, match="unknown field 'address.town'"):
        check_paths(Changed("address.town"), Person, "hook")
