"""The pytest fixtures users get: ormevents_app (eager) and captured_events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ormevents import Event, EventModel, event_handler
from ormevents.handlers import registry
from ormevents.testing import CapturedEvents, EagerPublisher

GREETED: list[str] = []


class Visitor(EventModel):
    name: str


@pytest.fixture
def greeter() -> Iterator[None]:
    """A handler in the default registry, as a user's handlers module would register it."""

    @event_handler("visitor.created", name="test.greet")
    def greet(event: Event) -> str:
        GREETED.append(event.data["name"])
        return f"hello {event.data['name']}"

    yield
    registry.remove("test.greet")
    GREETED.clear()


async def test_ormevents_app_runs_handlers_eagerly(ormevents_app: EagerPublisher, greeter: None) -> None:
    await Visitor.create(name="ann")
    assert GREETED == ["ann"]
    assert ormevents_app.results_for("visitor.created", "test.greet") == ["hello ann"]


async def test_captured_events(captured_events: CapturedEvents) -> None:
    visitor = await Visitor.create(name="ann")
    await visitor.update(name="bob")
    assert captured_events.names() == ["visitor.created", "visitor.updated"]
    assert captured_events[1].changes == {"name": ("ann", "bob")}
