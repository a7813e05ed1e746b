"""Shared fixtures: private servers for the session, a fresh database per test, both drivers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import ormevents
from ormevents.delivery.recording import RecordingPublisher
from tests.support import servers


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    with servers.mongo_url() as uri:
        yield uri


@pytest.fixture(scope="session")
def redis_uri() -> Iterator[str]:
    with servers.redis_url() as url:
        yield url


@pytest.fixture(scope="session")
async def pymongo_client(mongo_uri: str) -> AsyncIterator[Any]:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(mongo_uri, tz_aware=True, uuidRepresentation="standard")
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def motor_client(mongo_uri: str) -> AsyncIterator[Any]:
    from motor.motor_asyncio import AsyncIOMotorClient

    client: Any = AsyncIOMotorClient(mongo_uri, tz_aware=True, uuidRepresentation="standard")
    yield client
    client.close()


@asynccontextmanager
async def fresh_database(client: Any) -> AsyncIterator[Any]:
    """A database of ``client`` with a fresh name, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield client[name]
    await client.drop_database(name)


@asynccontextmanager
async def recording(database: Any) -> AsyncIterator[RecordingPublisher]:
    """ormevents initialised on ``database`` with a :class:`RecordingPublisher`, closed afterwards."""
    publisher = RecordingPublisher()
    await ormevents.init(database=database, publisher=publisher)
    yield publisher
    await ormevents.close()


@pytest.fixture(params=["pymongo", "motor"])
async def database(request: pytest.FixtureRequest, pymongo_client: Any, motor_client: Any) -> AsyncIterator[Any]:
    """A fresh database on the real server, through PyMongo async and through Motor."""
    async with fresh_database(pymongo_client if request.param == "pymongo" else motor_client) as db:
        yield db


@pytest.fixture
async def recorder(database: Any) -> AsyncIterator[RecordingPublisher]:
    """ormevents initialised on ``database``; yields the publisher recording the events."""
    async with recording(database) as publisher:
        yield publisher


@pytest.fixture
async def mock_recorder() -> AsyncIterator[RecordingPublisher]:
    """ormevents initialised on mongomock-motor (fast unit tests, no server)."""
    from mongomock_motor import AsyncMongoMockClient

    publisher = RecordingPublisher()
    await ormevents.init(database=AsyncMongoMockClient()["unit"], publisher=publisher)
    yield publisher
    await ormevents.close()
