"""Sensitive fields are found whatever the model looks like when it is defined: nested models
defined below it (forward references), pydantic and stdlib dataclasses, TypedDicts."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pydantic
import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from ormevents import REDACTED, EventModel, ModelDefinitionError, Sensitive
from ormevents.hooks import after_update


class Person(EventModel):
    contacts: list[Contact] = []
    best: Contact | None = None


class Contact(BaseModel):  # defined after the model that names it
    name: str
    phone: Annotated[str, Sensitive()]


@pydantic.dataclasses.dataclass
class Card:
    number: Annotated[str, Sensitive()]


@dataclasses.dataclass
class Pin:
    digits: Annotated[str, Sensitive()]


class Secret(TypedDict):
    token: Annotated[str, Sensitive()]


class Wallet(EventModel):
    card: Card | None = None
    pin: Pin | None = None
    secrets: list[Secret] = []


def test_a_nested_model_defined_later_is_redacted_in_events_and_repr() -> None:
    person = Person(contacts=[Contact(name="a", phone="555-1")], best=Contact(name="b", phone="555-2"))
    data = person.build_event("shared").data
    assert data["contacts"][0]["phone"] == REDACTED and data["best"]["phone"] == REDACTED, data
    assert "555" not in repr(person), repr(person)


def test_dataclasses_and_typeddicts_are_walked() -> None:
    wallet = Wallet(card=Card(number="4111"), pin=Pin(digits="1234"), secrets=[{"token": "t0k"}])
    data = wallet.build_event("opened").data
    leaked = [secret for secret in ("4111", "1234", "t0k") if secret in str(data)]
    assert not leaked, f"in clear: {leaked} in {data}"


def test_a_hook_path_below_a_forward_reference_is_checked_when_the_model_is_completed() -> None:
    class Team(EventModel):
        lead: Member | None = None

        @after_update(when="lead.nope")
        def notify(self) -> None: ...

    class Member(BaseModel):
        name: str

    with pytest.raises(ModelDefinitionError, match="lead.nope"):
        Team.model_rebuild(_types_namespace={"Member": Member})
