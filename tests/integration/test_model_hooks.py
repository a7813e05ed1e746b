"""Lifecycle hooks on a real server: order, conditions, aborting, skipping, recursion."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ormevents import (
    Changed,
    EventModel,
    IsNow,
    ModelDefinitionError,
    RecordingPublisher,
    hooks_disabled,
)
from ormevents.hooks import (
    after_create,
    after_delete,
    after_update,
    after_write,
    before_create,
    before_update,
    before_write,
)
from tests.integration.models import CALLS, Tracked, TrackedChild

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def clear_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


async def test_firing_order_for_create_update_delete(recorder: RecordingPublisher) -> None:
    item = await Tracked.create(name="a")
    assert CALLS == ["before_create", "before_write", "after_create", "after_write", "after_commit"]
    CALLS.clear()
    await item.update(status="done")
    assert CALLS == ["before_update", "before_write", "after_update", "after_write", "after_commit"]
    CALLS.clear()
    await item.delete()
    assert CALLS == ["before_delete", "after_delete", "after_commit"]
    assert recorder.names() == ["tracked.created", "tracked.updated", "tracked.deleted"]


async def test_base_hooks_first_then_definition_order(recorder: RecordingPublisher) -> None:
    await TrackedChild.create(name="a")
    assert CALLS == ["before_create", "before_write", "child_first", "child_second", "after_create", "after_write",
                     "after_commit"]


class Conditional(EventModel):
    status: str = "new"
    email: str = ""
    username: str = ""
    fired: list[str] = []

    @after_update(when="status")
    def on_status(self) -> None:
        CALLS.append("when")

    @after_update(when_any=["email", "username"])
    def on_identity(self) -> None:
        CALLS.append("when_any")

    @after_update(when="status", was="new")
    def on_was(self) -> None:
        CALLS.append("was")

    @after_update(when="status", is_now="active", has_changed=False)
    def on_is_now(self) -> None:
        CALLS.append("is_now")

    @after_update(when="status", changes_to="banned")
    def on_changes_to(self) -> None:
        CALLS.append("changes_to")

    @after_update(condition=Changed("email") & ~IsNow("status", "banned"))
    def on_condition(self) -> None:
        CALLS.append("condition")

    @after_update(condition=Changed("email") | Changed("username"))
    def on_or(self) -> None:
        CALLS.append("or")


async def test_every_condition_kind(recorder: RecordingPublisher) -> None:
    item = await Conditional.create()
    CALLS.clear()
    await item.update(status="active")
    assert CALLS == ["when", "was", "is_now"]
    CALLS.clear()
    await item.update(email="e@x")  # status still active: is_now fires without a status change
    assert CALLS == ["when_any", "is_now", "condition", "or"]
    CALLS.clear()
    await item.update(status="banned", username="u")
    assert CALLS == ["when", "when_any", "changes_to", "or"]


def test_condition_on_unknown_field_fails_at_class_creation() -> None:
    with pytest.raises(ModelDefinitionError, match="unknown field 'stauts'"):

        class Broken(EventModel):
            status: str = ""

            @after_update(when="stauts")
            def typo(self) -> None: ...

    with pytest.raises(ModelDefinitionError, match="unknown field 'nope'"):

        class AlsoBroken(EventModel):
            status: str = ""

            @before_write(condition=Changed("status") & Changed("nope"))
            def typo(self) -> None: ...


class Normalised(EventModel):
    email: str
    slug: str = ""
    version: int = 0

    @before_write
    async def normalise(self) -> None:
        await asyncio.sleep(0)
        self.email = self.email.strip().lower()

    @before_update
    def bump(self) -> None:
        self.version += 1

    @before_write(when="email")
    def derive_slug(self) -> None:  # sees the change the previous hook made
        self.slug = self.email.split("@")[0]


async def test_before_hook_changes_are_written_and_diffed(recorder: RecordingPublisher, database: Any) -> None:
    item = await Normalised.create(email="  Ann@X.IO ")
    stored = await database["normaliseds"].find_one({"_id": item.id})
    assert (stored["email"], stored["slug"]) == ("ann@x.io", "ann")
    assert recorder.events[-1].changes["email"] == (None, "ann@x.io")
    await item.update(email="BOB@x.io")
    assert recorder.events[-1].changes == {"email": ("ann@x.io", "bob@x.io"), "slug": ("ann", "bob"), "version": (0, 1)}


class Guarded(EventModel):
    status: str = "new"
    log: list[str] = []

    @before_update(changes_to="locked", when="status")
    def refuse(self) -> None:
        raise PermissionError("locked documents are read-only")

    @before_create
    def refuse_bad(self) -> None:
        if self.status == "bad":
            raise ValueError("bad status")

    @after_update(when="status", changes_to="explode")
    def explode(self) -> None:
        raise RuntimeError("after-hook failed")

    @after_write
    def after(self) -> None:
        CALLS.append("after_write")


async def test_before_hook_error_aborts_the_write(recorder: RecordingPublisher, database: Any) -> None:
    with pytest.raises(ValueError, match="bad status"):
        await Guarded.create(status="bad")
    assert await database["guardeds"].count_documents({}) == 0
    item = await Guarded.create()
    CALLS.clear()
    item.status = "locked"
    with pytest.raises(PermissionError, match="read-only"):
        await item.save()
    assert (await database["guardeds"].find_one({"_id": item.id}))["status"] == "new"
    assert CALLS == [] and recorder.names() == ["guarded.created"]
    assert item.changes == {"status": ("new", "locked")}  # still pending


async def test_after_hook_error_keeps_the_write_and_the_event(recorder: RecordingPublisher, database: Any) -> None:
    item = await Guarded.create()
    CALLS.clear()
    with pytest.raises(RuntimeError, match="after-hook failed"):
        await item.update(status="explode")
    assert (await database["guardeds"].find_one({"_id": item.id}))["status"] == "explode"
    assert recorder.names() == ["guarded.created", "guarded.updated"]
    assert item.changes == {}


async def test_skip_hooks_and_hooks_disabled_still_emit(recorder: RecordingPublisher) -> None:
    item = Tracked(name="a")
    await item.save(skip_hooks=True)
    async with hooks_disabled(Tracked):
        await item.update(status="x")
    with hooks_disabled():
        await item.update(status="y")
    await item.update(status="z", emit=False, skip_hooks=True)
    assert CALLS == []
    assert recorder.names() == ["tracked.created", "tracked.updated", "tracked.updated"]
    await item.update(status="w")
    assert CALLS == ["before_update", "before_write", "after_update", "after_write", "after_commit"]


async def test_hooks_disabled_is_per_task(recorder: RecordingPublisher) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def writer_with_hooks() -> None:
        await started.wait()
        await Tracked.create(name="other-task")
        release.set()

    task = asyncio.create_task(writer_with_hooks())
    async with hooks_disabled(Tracked):
        started.set()
        await release.wait()
        await Tracked.create(name="this-task")
    await task
    assert CALLS == ["before_create", "before_write", "after_create", "after_write", "after_commit"]


class SelfSaving(EventModel):
    counter: int = 0

    @after_write
    async def bump_again(self) -> None:
        self.counter += 1
        await self.save()  # would recurse forever without the guard


async def test_saving_from_own_after_hook_does_not_recurse(recorder: RecordingPublisher, database: Any) -> None:
    item = await SelfSaving.create()
    assert item.counter == 1
    assert (await database["self_savings"].find_one({"_id": item.id}))["counter"] == 1
    assert recorder.names() == ["self_saving.created", "self_saving.updated"]


class Announcing(EventModel):
    name: str

    @after_create
    async def announce(self) -> None:
        CALLS.append(f"saw:{self.saved_changes.new('name')}")

    @after_delete
    def gone(self) -> None:
        CALLS.append(f"deleted:{self.saved_changes.old('name')}")


async def test_after_hooks_see_saved_changes(recorder: RecordingPublisher) -> None:
    item = await Announcing.create(name="a")
    await item.delete()
    assert CALLS == ["saw:a", "deleted:a"]
