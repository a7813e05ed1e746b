"""Fixtures of the fault-injection suite (``pytest tests/faults``; see :mod:`tests.faults.helpers`).

Each scenario gets its own private servers where it injects a fault (a Redis or a SecantusDB it
may stop and restart on the same port), a fresh database and queue name, and prints
``lost=N duplicated=N``. The session's servers (``tests/conftest.py``) serve what is not faulted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.helpers import RestartableMongo, RestartableRedis, running

pytestmark = pytest.mark.integration


@pytest.fixture
def fault_redis() -> Iterator[RestartableRedis]:
    """A private Redis (AOF on) this test may stop and restart."""
    with running(RestartableRedis()) as server:
        yield server  # type: ignore[misc]  # running() yields the server it was given


@pytest.fixture
def fault_mongo() -> Iterator[RestartableMongo]:
    """A private SecantusDB (data on disk) this test may stop and restart."""
    with running(RestartableMongo()) as server:
        yield server  # type: ignore[misc]  # running() yields the server it was given


@pytest.fixture
def run_name() -> str:
    """A fresh name for this scenario's queue, database and counters."""
    return f"fault{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sync_mongo(mongo_uri: str) -> Iterator[Any]:
    """A synchronous client of the session's SecantusDB (to read the effect counters)."""
    from pymongo import MongoClient

    client: Any = MongoClient(mongo_uri)
    yield client
    client.close()
