"""pytest fixtures for apps built on ormevents (loaded automatically once ormevents is installed).

* ``ormevents_app`` — ormevents initialised in eager mode (handlers run in-process right after
  each write, time simulated) on a fresh mongomock-motor database, or on the MongoDB at
  ``ORMEVENTS_TEST_MONGO_URL`` when set; yields the :class:`~ormevents.delivery.eager.EagerPublisher`.
* ``captured_events`` — with ``ormevents_app``: the events emitted during the test.

Async fixtures need pytest-asyncio (``asyncio_mode = "auto"`` or ``@pytest.mark.asyncio``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ..delivery.eager import EagerPublisher
from ..runtime import close, init
from .capture import CapturedEvents, capture_events

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio async fixtures cannot run at all
    _async_fixture = pytest.fixture  # type: ignore[assignment]  # same decorator role, other overloads


@_async_fixture
async def ormevents_app() -> AsyncIterator[EagerPublisher]:
    """Eager ormevents on a fresh database; yields the publisher that ran the handlers."""
    client: Any
    url = os.environ.get("ORMEVENTS_TEST_MONGO_URL")
    name = f"ormevents_test_{uuid.uuid4().hex[:10]}"
    if url:
        from pymongo import AsyncMongoClient

        client = AsyncMongoClient(url, tz_aware=True)
    else:
        from mongomock_motor import AsyncMongoMockClient

        client = AsyncMongoMockClient()
    runtime = await init(database=client[name], eager=True)
    assert isinstance(runtime.publisher, EagerPublisher)
    try:
        yield runtime.publisher
    finally:
        await close()
        if url:
            await client.drop_database(name)
            await client.close()


@pytest.fixture
def captured_events(ormevents_app: EagerPublisher) -> Iterator[CapturedEvents]:
    """The events emitted during the test (requires ``ormevents_app``)."""
    with capture_events() as events:
        yield events
