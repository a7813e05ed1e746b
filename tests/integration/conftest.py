"""One worker shared by the failed-job, status and CLI tests (a worker start costs ~2 s)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import RecordingPublisher, event_bus
from tests.conftest import fresh_database, recording
from tests.integration.worker_process import WorkerProcess, running
from tests.support.servers import free_port


@pytest.fixture(scope="session")
def ops_queue() -> str:
    return f"ops{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="session")
def ops_worker(ops_queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    with running(WorkerProcess(ops_queue, redis_uri, extra_env={"ORMEVENTS_METRICS_PORT": str(free_port())})) as process:
        yield process


@pytest.fixture(scope="session")
def rdb(redis_uri: str) -> Iterator[redis.Redis]:
    """A client of the private Redis, decoding to str."""
    client = redis.Redis.from_url(redis_uri, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def ops_redis(rdb: redis.Redis) -> redis.Redis:
    return rdb


@pytest.fixture
async def ops_bus(ops_worker: WorkerProcess, ops_queue: str, redis_uri: str, mongo_uri: str) -> AsyncIterator[Any]:
    """``event_bus`` on the shared worker's queue."""
    await ormevents.init(mongo_uri=mongo_uri, database="ops_tests", redis_uri=redis_uri,
                         event_config={"queue_name": ops_queue})
    yield event_bus
    await ormevents.close()


@pytest.fixture
async def bus(queue: str, redis_uri: str, mongo_uri: str) -> AsyncIterator[Any]:
    """``event_bus`` on the module's ``queue`` (modules with a worker of their own override it)."""
    await ormevents.init(mongo_uri=mongo_uri, database="delivery_tests", redis_uri=redis_uri,
                         event_config={"queue_name": queue})
    yield event_bus
    await ormevents.close()


@pytest.fixture
async def db(pymongo_client: Any) -> AsyncIterator[Any]:
    """A fresh database through PyMongo async only."""
    async with fresh_database(pymongo_client) as database:
        yield database


@pytest.fixture
async def rec(db: Any) -> AsyncIterator[RecordingPublisher]:
    """ormevents recording the events of writes to ``db``."""
    async with recording(db) as publisher:
        yield publisher
