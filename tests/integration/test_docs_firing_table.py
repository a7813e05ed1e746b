"""The firing table in docs/hooks.md is checked against the code, row by row."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ormevents import RecordingPublisher, hooks_disabled
from tests.integration.models import CALLS, Tracked

pytestmark = pytest.mark.integration

TABLE = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def documented_rows() -> dict[str, tuple[list[str], str]]:
    text = TABLE.read_text()
    section = text.split("<!-- firing-table -->")[1].split("<!-- /firing-table -->")[0]
    rows = {}
    for line in section.strip().splitlines()[2:]:
        method, hooks, event = (cell.strip() for cell in line.strip("|").split("|"))
        rows[method] = ([] if hooks == "none" else [h.strip() for h in hooks.split(",")], event)
    return rows


async def _existing() -> Tracked:
    item = await Tracked.create(name="a")
    CALLS.clear()
    return item


async def create() -> None:
    await Tracked.create(name="a")


async def save_new() -> None:
    await Tracked(name="a").save()


async def save_changed() -> None:
    item = await _existing()
    item.status = "x"
    await item.save()


async def update_changed() -> None:
    await (await _existing()).update(status="x")


async def no_change() -> None:
    item = await _existing()
    await item.save()
    await item.update(status=item.status)


async def delete() -> None:
    await (await _existing()).delete()


async def skip_hooks_new() -> None:
    await Tracked(name="a").save(skip_hooks=True)


async def emit_false() -> None:
    item = await _existing()
    item.status = "x"
    await item.save(emit=False)


async def disabled() -> None:
    item = await _existing()
    item.status = "x"
    async with hooks_disabled(Tracked):
        await item.save()


async def custom() -> None:
    await (await _existing()).emit("action")


async def insert_many() -> None:
    await Tracked.insert_many([Tracked(name="a")])


async def insert_many_hooks() -> None:
    await Tracked.insert_many([{"name": "a"}], hooks=True)


async def insert_many_bulk() -> None:
    await Tracked.insert_many([{"name": "a"}], events="bulk")


async def update_many() -> None:
    await _existing()
    await Tracked.update_many({}, {"$set": {"status": "x"}})


async def update_many_hooks() -> None:
    await _existing()
    await Tracked.update_many({}, {"$set": {"status": "x"}}, hooks=True)


async def update_many_bulk() -> None:
    await _existing()
    await Tracked.update_many({}, {"$set": {"status": "x"}}, events="bulk")


async def update_many_off() -> None:
    await _existing()
    await Tracked.update_many({}, {"$set": {"status": "x"}}, events="off")


async def update_many_no_change() -> None:
    await _existing()
    await Tracked.update_many({}, {"$set": {"status": "new"}}, hooks=True)


async def update_one() -> None:
    await _existing()
    await Tracked.update_one({}, {"$set": {"status": "x"}})


async def find_one_and_update() -> None:
    await _existing()
    await Tracked.find_one_and_update({}, {"$set": {"status": "x"}})


async def delete_many() -> None:
    await _existing()
    await Tracked.delete_many({})


async def delete_many_hooks() -> None:
    await _existing()
    await Tracked.delete_many({}, hooks=True)


async def delete_many_bulk() -> None:
    await _existing()
    await Tracked.delete_many({}, events="bulk")


SCENARIOS: dict[str, Callable[[], Awaitable[None]]] = {
    "`Model.create(**fields)`": create,
    "`save()` on a new instance": save_new,
    "`save()` with changes": save_changed,
    "`update(**fields)` with changes": update_changed,
    "`save()` / `update()` with no change": no_change,
    "`delete()`": delete,
    "`save(skip_hooks=True)` on a new instance": skip_hooks_new,
    "`save(emit=False)` with changes": emit_false,
    "`save()` inside `hooks_disabled(Model)`": disabled,
    '`emit("action")`': custom,
    "`Model.insert_many(docs)`": insert_many,
    "`Model.insert_many(docs, hooks=True)`": insert_many_hooks,
    '`Model.insert_many(docs, events="bulk")`': insert_many_bulk,
    "`Model.update_many(filter, update)`": update_many,
    "`Model.update_many(filter, update, hooks=True)`": update_many_hooks,
    '`Model.update_many(filter, update, events="bulk")`': update_many_bulk,
    '`Model.update_many(filter, update, events="off")`': update_many_off,
    "`Model.update_many(...)` changing nothing": update_many_no_change,
    "`Model.update_one(filter, update)`": update_one,
    "`Model.find_one_and_update(filter, update)`": find_one_and_update,
    "`Model.delete_many(filter)`": delete_many,
    "`Model.delete_many(filter, hooks=True)`": delete_many_hooks,
    '`Model.delete_many(filter, events="bulk")`': delete_many_bulk,
}
WITHOUT_SETUP = {"`Model.create(**fields)`", "`save()` on a new instance", "`save(skip_hooks=True)` on a new instance",
                 *(method for method in SCENARIOS if method.startswith("`Model.insert_many"))}


def test_every_documented_row_has_a_scenario() -> None:
    assert set(documented_rows()) == set(SCENARIOS)


@pytest.mark.parametrize("method", list(SCENARIOS))
async def test_row_matches_behaviour(method: str, recorder: RecordingPublisher) -> None:
    hooks, event = documented_rows()[method]
    CALLS.clear()
    await SCENARIOS[method]()
    emitted = recorder.names()
    if method not in WITHOUT_SETUP:
        emitted = emitted[1:]  # the setup create
    assert CALLS == hooks
    expected = [] if event == "none" else [re.sub(r"<model>", "tracked", event.strip("`"))]
    assert emitted == expected
