"""Run by tests/integration/test_event_loops.py in a pytest of its own, under pytest-asyncio's
defaults: ``asyncio_mode=strict`` and a new event loop for every test (issue 10, item 3).

Written as a user's test module would be: ``@pytest.mark.asyncio`` on each test, ``init()`` and
``close()`` called in some tests and forgotten in others, and the documented fixtures.
``ORMEVENTS_TEST_MONGO_URL`` is the suite's SecantusDB; ``LOOPS_DATABASE`` a fresh database.
"""

from __future__ import annotations

import os

import pytest

import ormevents
from ormevents import EventModel
from ormevents.testing import CapturedEvents, EagerPublisher

URI = os.environ["ORMEVENTS_TEST_MONGO_URL"]
DATABASE = os.environ["LOOPS_DATABASE"]


class LoopNote(EventModel):
    text: str


@pytest.mark.asyncio
async def test_init_and_write_in_a_first_loop() -> None:
    await ormevents.init(mongo_uri=URI, database=DATABASE)
    await LoopNote.create(text="first")
    # no close(): the next test runs in a new loop with this loop's client still in the runtime


@pytest.mark.asyncio
async def test_init_again_in_a_new_loop() -> None:
    await ormevents.init(mongo_uri=URI, database=DATABASE)
    await LoopNote.create(text="second")
    assert await LoopNote.count() == 2


@pytest.mark.asyncio
async def test_the_runtime_of_an_earlier_loop_keeps_working() -> None:
    note = await LoopNote.find_one({"text": "second"})
    assert note is not None
    await note.update(text="third")
    await ormevents.close()


@pytest.mark.asyncio
async def test_ormevents_app_fixture(ormevents_app: EagerPublisher) -> None:
    await LoopNote.create(text="fixture")
    assert ormevents_app.names() == ["loop_note.created"]


@pytest.mark.asyncio
async def test_captured_events_fixture(captured_events: CapturedEvents) -> None:
    note = await LoopNote.create(text="a")
    await note.update(text="b")
    assert captured_events.names() == ["loop_note.created", "loop_note.updated"]


@pytest.mark.asyncio
async def test_init_after_the_fixtures_and_close() -> None:
    await ormevents.init(mongo_uri=URI, database=DATABASE)
    assert await LoopNote.count({"text": "third"}) == 1
    await ormevents.close()
