"""``init(redis_uri=...)`` asks Redis at start-up: a clear typed error when it does not answer,
a clear warning where the configuration allows starting without it."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

import ormevents
from ormevents import BrokerUnavailableError, NotInitializedError
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def _mock_db() -> object:
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()["init_check"]


async def test_init_fails_clearly_when_redis_does_not_answer() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerUnavailableError) as caught:
        await ormevents.init(database=_mock_db(), redis_uri=dead,
                             event_config={"publish_retry": {"timeout": 0.5}})
    message = str(caught.value)
    assert f"Redis at {dead} does not answer" in message and "redis_check" in message
    with pytest.raises(NotInitializedError):  # nothing half set up is left behind
        ormevents.get_runtime()


async def test_init_warns_and_starts_when_allowed(caplog: pytest.LogCaptureFixture) -> None:
    dead = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="ormevents.runtime"):
        await ormevents.init(database=_mock_db(), redis_uri=dead,
                             event_config={"publish_retry": {"timeout": 0.5}, "redis_check": "warn"})
    try:
        [record] = [r for r in caplog.records if r.name == "ormevents.runtime"]
        assert "does not answer" in record.getMessage() and "starting anyway" in record.getMessage()
        assert "hunter2" not in record.getMessage()  # the password never reaches a log
        assert ormevents.get_runtime().publisher is not None
    finally:
        await ormevents.close()


async def test_init_with_a_live_redis_says_nothing(redis_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ormevents.runtime"):
        await ormevents.init(database=_mock_db(), redis_uri=redis_uri)
    await ormevents.close()
    assert not [r for r in caplog.records if r.name == "ormevents.runtime"]


def test_redis_check_takes_only_known_values() -> None:
    with pytest.raises(ValidationError):
        ormevents.EventConfig(redis_check="maybe")  # type: ignore[arg-type]  # the wrong value on purpose
