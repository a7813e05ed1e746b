"""The shop's models: hooks validate and normalise; writes emit user.* and order.* events."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from ormevents import EventModel, ObjectIdField, Sensitive
from ormevents.hooks import after_create, after_update, before_update, before_write

USER_TRANSITIONS = {
    "inactive": {"active", "banned"},
    "active": {"banned", "inactive"},
    "banned": {"active"},
}
ORDER_TRANSITIONS = {
    "created": {"paid", "cancelled"},
    "paid": {"shipped", "cancelled"},
    "shipped": set(),
    "cancelled": set(),
}
REMINDER_DELAY_SECONDS = 3.0


class InvalidTransition(ValueError):
    """A status change the lifecycle does not allow."""


def check_transition(kind: str, table: dict[str, set[str]], old: str | None, new: str) -> None:
    if old is not None and old != new and new not in table.get(old, set()):
        raise InvalidTransition(f"{kind} cannot go from {old!r} to {new!r}")


class User(EventModel):
    _collection = "users"
    username: str
    email: str
    status: str = "inactive"
    password_hash: Annotated[str, Sensitive()] = ""

    @before_write
    def normalise(self) -> None:
        self.email = self.email.strip().lower()
        self.username = self.username.strip()
        if "@" not in self.email:
            raise ValueError(f"invalid email {self.email!r}")

    @before_update(when="status")
    def follow_lifecycle(self) -> None:
        check_transition("user", USER_TRANSITIONS, self.changes.old("status"), self.status)


class Order(EventModel):
    _collection = "orders"
    user_id: ObjectIdField
    total: Decimal
    status: str = "created"

    @before_write
    def validate_total(self) -> None:
        if self.total <= 0:
            raise ValueError("an order total must be positive")

    @before_update(when="status")
    def follow_lifecycle(self) -> None:
        check_transition("order", ORDER_TRANSITIONS, self.changes.old("status"), self.status)

    @after_create
    async def schedule_payment_reminder(self) -> None:
        await self.emit("payment_reminder", delay=REMINDER_DELAY_SECONDS)

    @after_update(when="status")
    async def announce_status(self) -> None:
        """order.paid / order.shipped / order.cancelled, for handlers that care about one step."""
        await self.emit(self.status)
