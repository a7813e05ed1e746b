"""Hook semantics around the write (issue 10, items 5 and 9), on a real server.

* after an acknowledged write the event is published first, then after-hooks run; with a
  publisher that publishes inline, a publish error and an after-hook error are both visible to
  the caller; with the outbox (a broker), a broker outage raises nothing: the event waits in
  the document, and the after-hook's error reaches the caller;
* each after-hook sees the frozen ChangeSet of its own write, even across a save made inside
  an earlier after-hook;
* ``update(**fields)`` validates the combined result once (model validators included) and
  leaves the instance unchanged when it is invalid;
* a method with two stacked decorators of one moment runs at most once per moment;
* the after-hook state (which write a hook runs for, whether a save is made inside a hook) is
  per task: two tasks saving one instance concurrently keep theirs apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Self

import pytest
from pydantic import ValidationError, model_validator

import ormevents
from ormevents import BrokerUnavailableError, ChangeSet, EventModel, RecordingPublisher
from ormevents.hooks import after_update, after_write, before_update, before_write
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

SEEN: list[Any] = []


@pytest.fixture(autouse=True)
def clear_seen() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


class Receipt(EventModel):
    number: str

    @after_write
    def explode(self) -> None:
        SEEN.append("after_write")
        raise ValueError(f"after-hook failed for {self.number}")


class DownPublisher:
    """An inline publisher (no outbox) whose broker is down."""

    outbox = None

    async def publish(self, event: Any, *, delay: Any = None, eta: Any = None) -> None:
        raise BrokerUnavailableError(f"cannot publish {event.name}: the broker is down (test publisher)")

    async def publish_many(self, events: Any) -> int:
        raise BrokerUnavailableError("the broker is down (test publisher)")

    async def close(self) -> None:
        return None


async def test_publish_error_is_not_masked_by_an_after_hook_error(database: Any) -> None:
    await ormevents.init(database=database, publisher=DownPublisher())
    try:
        with pytest.raises(Exception) as caught:
            await Receipt.create(number="R-1")
        error = caught.value
        assert isinstance(error, BrokerUnavailableError), (
            f"the caller got {type(error).__name__}: {error}; the BrokerUnavailableError (event not delivered) was masked")
        assert isinstance(error.__context__, ValueError) and "R-1" in str(error.__context__)
        assert any("after_write hook Receipt.explode" in note for note in getattr(error, "__notes__", [])), error
        assert SEEN == ["after_write"]
        assert await database["receipts"].count_documents({"number": "R-1"}) == 1
    finally:
        await ormevents.close()


async def test_with_the_outbox_a_broker_outage_raises_nothing_and_the_hook_error_reaches_the_caller(
        database: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    await ormevents.init(database=database, redis_uri=dead,
                         event_config={"queue_name": "t:down", "publish_retry": {"max_retries": 1, "timeout": 0.5},
                                       "redis_check": "skip"})
    try:
        with pytest.raises(ValueError, match="R-2") as caught:
            await Receipt.create(number="R-2")
        assert not isinstance(caught.value.__context__, BrokerUnavailableError), caught.value.__context__
        assert SEEN == ["after_write"]
        stored = await database["receipts"].find_one({"number": "R-2"})
        pending = [entry["n"] for entry in stored.get("_oe_outbox", {}).values()]
        assert pending == ["receipt.created"], f"the event should wait in the document's outbox, found {pending}"
    finally:
        await ormevents.close()


class Ordered(EventModel):
    status: str = "new"

    @after_update
    def check_published(self) -> None:
        publisher = ormevents.get_runtime().publisher
        assert isinstance(publisher, RecordingPublisher)
        SEEN.append(publisher.names()[-1])


async def test_the_event_is_published_before_after_hooks_run(recorder: RecordingPublisher) -> None:
    doc = await Ordered.create()
    await doc.update(status="done")
    assert SEEN == ["ordered.updated"]


class Nested(EventModel):
    status: str = "new"
    note: str = ""

    @after_update(when="status")
    async def touch_note(self) -> None:
        SEEN.append(("first", dict(self.saved_changes.as_pairs())))
        self.note = f"status is {self.status}"
        await self.save()  # a write of its own (no hooks): it must not change what later hooks see

    @after_update(when="status")
    def second(self) -> None:
        SEEN.append(("second", dict(self.saved_changes.as_pairs())))

    @after_write
    async def third(self) -> None:
        SEEN.append(("third", dict(self.saved_changes.as_pairs())))
        self.note += "!"
        await self.save()  # a second save from the after-hooks of one write: still no hooks, no recursion


async def test_each_after_hook_sees_the_changes_of_its_own_write(recorder: RecordingPublisher) -> None:
    doc = await Nested.create()
    SEEN.clear()
    await doc.update(status="active")
    own = {"status": ("new", "active")}
    assert SEEN == [("first", own), ("second", own), ("third", own)], f"after-hooks saw {SEEN}"
    assert recorder.names()[-3:] == ["nested.updated"] * 3
    assert doc.saved_changes == {"note": ("status is active", "status is active!")}  # afterwards: the last write


class Window(EventModel):
    low: int
    high: int

    @model_validator(mode="after")
    def ordered(self) -> Self:
        SEEN.append("validated")
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        return self


async def test_update_validates_the_combined_result_once(recorder: RecordingPublisher) -> None:
    window = await Window.create(low=1, high=2)
    SEEN.clear()
    await window.update(low=5, high=10)
    assert (window.low, window.high) == (5, 10)
    assert SEEN.count("validated") == 1, f"model validator ran {SEEN.count('validated')} times for one update()"
    assert recorder.events[-1].changes == {"low": (1, 5), "high": (2, 10)}
    before = window.model_dump()
    with pytest.raises(ValidationError):
        await window.update(low=20, high=3)
    assert window.model_dump() == before and window.changes == {}, "a refused update() changed the instance"


STACKED: list[str] = []


class Person(EventModel):
    first_name: str
    last_name: str
    age: int = 0

    @before_update(when="first_name")
    @before_update(when="last_name")
    def renamed(self) -> None:
        STACKED.append("renamed")

    @before_write
    @after_update
    @after_update(when="age")
    def twice_kinds(self) -> None:
        STACKED.append("kinds")


async def test_stacked_decorators_of_one_moment_run_once(recorder: RecordingPublisher) -> None:
    person = await Person.create(first_name="Ann", last_name="Lee")
    STACKED.clear()
    await person.update(first_name="Anna", last_name="Leigh")
    assert STACKED.count("renamed") == 1, f"a method with two @before_update ran {STACKED.count('renamed')} times"
    STACKED.clear()
    await person.update(last_name="Li")
    assert STACKED.count("renamed") == 1
    STACKED.clear()
    await person.update(age=3)
    assert STACKED == ["kinds", "kinds"], f"once at before_write and once at after_update, got {STACKED}"
    changes: ChangeSet = person.saved_changes
    assert changes == {"age": (0, 3)}


GATE: dict[str, asyncio.Event] = {}


class Juggled(EventModel):
    n: int = 0
    label: str = ""

    @after_update
    async def noted(self) -> None:
        SEEN.append(("entered", tuple(self.saved_changes)))
        await GATE["open"].wait()
        SEEN.append(("left", tuple(self.saved_changes)))


async def test_concurrent_saves_of_one_instance_keep_their_after_hook_state_apart(
        recorder: RecordingPublisher) -> None:
    """Task A's after-hook is still awaiting when task B saves the same instance: B's hooks run
    (B is not inside A's hook), each hook sees its own write's changes, and nothing is left
    behind: a later save runs its hooks."""
    GATE["open"] = asyncio.Event()
    doc = await Juggled.create()
    doc.n = 1
    first = asyncio.create_task(doc.save())
    while not SEEN:
        await asyncio.sleep(0.005)
    doc.label = "b"
    second = asyncio.create_task(doc.save())
    for _ in range(100):  # until B's hook is waiting too (it never comes if B runs no hooks)
        if len(SEEN) == 2:
            break
        await asyncio.sleep(0.005)
    GATE["open"].set()
    await asyncio.gather(first, second)
    assert sorted(SEEN) == [("entered", ("label",)), ("entered", ("n",)), ("left", ("label",)), ("left", ("n",))], SEEN
    SEEN.clear()
    doc.n = 2
    await doc.save()
    assert SEEN == [("entered", ("n",)), ("left", ("n",))], "a later save ran no after-hook: state left behind"
