"""Models shared by the model-layer integration tests; hooks record their calls in ``CALLS``."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel

from ormevents import EventModel, EventModelConfig, Sensitive
from ormevents.hooks import (
    after_commit,
    after_create,
    after_delete,
    after_update,
    after_write,
    before_create,
    before_delete,
    before_update,
    before_write,
)

CALLS: list[str] = []


class Address(BaseModel):
    city: str
    zip: str = ""
    secret_code: Annotated[str, Sensitive()] = ""


class User(EventModel):
    _collection = "users"
    username: str
    email: str
    status: str = "inactive"
    address: Address | None = None
    tags: list[str] = []
    prefs: dict[str, Any] = {}


class Tracked(EventModel):
    """Every hook kind, recording the order they fire in."""

    name: str
    status: str = "new"

    @before_create
    def b_create(self) -> None:
        CALLS.append("before_create")

    @after_create
    async def a_create(self) -> None:
        CALLS.append("after_create")

    @before_update
    async def b_update(self) -> None:
        CALLS.append("before_update")

    @after_update
    def a_update(self) -> None:
        CALLS.append("after_update")

    @before_write
    def b_write(self) -> None:
        CALLS.append("before_write")

    @after_write
    async def a_write(self) -> None:
        CALLS.append("after_write")

    @before_delete
    def b_delete(self) -> None:
        CALLS.append("before_delete")

    @after_delete
    def a_delete(self) -> None:
        CALLS.append("after_delete")

    @after_commit
    def a_commit(self) -> None:
        CALLS.append("after_commit")


class TrackedChild(Tracked):
    """Base hooks first, then the child's, in definition order."""

    @before_write
    async def child_first(self) -> None:
        CALLS.append("child_first")

    @before_write
    def child_second(self) -> None:
        CALLS.append("child_second")


class Account(EventModel):
    model_config = EventModelConfig(sensitive_fields=("password_hash",))
    email: str
    password_hash: str
    api_key: Annotated[str, Sensitive()] = ""
    address: Address | None = None


class Rich(EventModel):
    """Values whose storage and equality need care."""

    id: uuid.UUID | None = None
    price: Decimal
    at: datetime
    ref: uuid.UUID
    blob: bytes = b""


class Place(BaseModel):
    city: str = ""
    zip: str = ""


class Member(EventModel):
    model_config = EventModelConfig(event_data=("name",))  # the bulk tests key events by name
    _collection = "members"
    name: str
    status: str = "new"
    score: int | None = None
    visits: int = 0
    tags: list[str] = []
    place: Place = Place()
    prefs: dict[str, Any] = {}
    nick: str | None = None
    seen_at: datetime | None = None
