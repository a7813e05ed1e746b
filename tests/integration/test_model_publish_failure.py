"""What a write does when the broker is down (docs/guarantees.md states it; this proves it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import ormevents
from ormevents import BrokerUnavailableError, EventModel
from ormevents.hooks import after_write
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

AFTER: list[str] = []


class Invoice(EventModel):
    number: str

    @after_write
    def noted(self) -> None:
        AFTER.append(self.number)


@pytest.fixture
def after_calls() -> Iterator[list[str]]:
    AFTER.clear()
    yield AFTER
    AFTER.clear()


async def test_write_stands_and_after_hooks_run_when_broker_is_down(database: Any, after_calls: list[str]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    await ormevents.init(database=database, redis_uri=dead,
                         event_config={"queue_name": "t:down", "publish_retry": {"max_retries": 1, "timeout": 0.5}, "redis_check": "skip"})
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError):
            await Invoice.create(number="F-1")
        assert time.monotonic() - started < 10
        assert await database["invoices"].count_documents({"number": "F-1"}) == 1
        assert after_calls == ["F-1"]
    finally:
        await ormevents.close()
