"""What a write does when the broker is down (docs/guarantees.md states it; this proves it).

With the outbox (``init(redis_uri=...)``) the write succeeds, its after-hooks run, its event waits
in the document; one warning is logged for the whole outage, and the recovery at INFO. Before
the outbox, each such save raised ``BrokerUnavailableError`` and its event was lost.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import EventModel
from ormevents.hooks import after_write
from ormevents.testing.servers import redis_server_binary
from tests.support.servers import free_port, stop, wait_for_port

pytestmark = pytest.mark.integration

AFTER: list[str] = []


class Invoice(EventModel):
    number: str
    paid: bool = False

    @after_write
    def noted(self) -> None:
        AFTER.append(self.number)


@pytest.fixture
def after_calls() -> Iterator[list[str]]:
    AFTER.clear()
    yield AFTER
    AFTER.clear()


async def test_writes_succeed_and_events_wait_while_the_broker_is_down_with_one_warning(
        database: Any, after_calls: list[str], caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    caplog.set_level(logging.INFO, logger="ormevents.delivery.celery.dispatcher")
    await ormevents.init(database=database, redis_uri=url,
                         event_config={"queue_name": "t:down", "publish_retry": {"max_retries": 1, "timeout": 0.5},
                                       "redis_check": "skip"})
    server = None
    try:
        started = time.monotonic()
        invoices = [await Invoice.create(number=f"F-{i}") for i in range(20)]
        for invoice in invoices:
            await invoice.update(paid=True)
        await ormevents.flush()
        took = time.monotonic() - started
        assert took < 10, f"40 writes took {took:.1f} s with the broker down"
        assert after_calls == [f"F-{i}" for i in range(20)] * 2
        waiting = {d["number"]: sorted(e["n"] for e in d.get("_oe_outbox", {}).values()) async for d in database["invoices"].find({})}
        missing = {n: names for n, names in waiting.items() if names != ["invoice.created", "invoice.updated"]}
        assert not missing, f"{len(missing)} of 20 documents lack their pending events: {list(missing.items())[:3]}"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unreachable" in r.getMessage()]
        assert len(warnings) == 1, f"{len(warnings)} warnings for one outage of 40 writes (expected 1)"
        assert "events are kept in the outbox" in warnings[0].getMessage()

        server = subprocess.Popen([redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port, server)
        deadline = time.monotonic() + 10
        while not any("is back after" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        back = [r for r in caplog.records if "is back after" in r.getMessage()]
        assert len(back) == 1 and back[0].levelno == logging.INFO, [r.getMessage() for r in back]
        await Invoice.create(number="F-after")
        await ormevents.flush()
        queued = redis.Redis.from_url(url).llen("t:down")
        assert queued == 1, f"the write after the recovery should be handed over at once; {queued} messages queued"
    finally:
        await ormevents.close()
        if server is not None:
            stop(server)


async def test_a_broker_that_never_answers_costs_a_write_nothing_and_one_warning(
        database: Any, after_calls: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """A hung Redis (it accepts the connection, reads, never replies): each call on the outbox's
    client is bounded by the publish timeout, so the hand-off gives up once and the writes go on."""
    received: list[bytes] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)

    hung = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    caplog.set_level(logging.INFO, logger="ormevents.delivery.celery.dispatcher")
    await ormevents.init(database=database, redis_uri=f"redis://127.0.0.1:{port}/0",
                         event_config={"queue_name": "t:hung", "publish_retry": {"max_retries": 1, "timeout": 0.3},
                                       "redis_check": "skip"})
    try:
        started = time.monotonic()
        invoices = [await Invoice.create(number=f"H-{i}") for i in range(20)]
        await ormevents.flush()
        took = time.monotonic() - started
        assert took < 3, f"20 writes took {took:.1f} s with a broker that never answers"
        assert after_calls == [f"H-{i}" for i in range(20)] and received, "the hand-off reached the hung server"
        pending = [d async for d in database["invoices"].find({"number": {"$in": [i.number for i in invoices]},
                                                                 "_oe_outbox": {"$exists": True}})]
        assert len(pending) == 20, "every event waits in its document for the relay"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unreachable" in r.getMessage()]
        assert len(warnings) == 1 and "TimeoutError" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
        client = ormevents.get_runtime().outbox.state().client  # the bound is the outbox's, not redis-py's
        assert client.connection_pool.connection_kwargs["socket_timeout"] is None  # (redis-py: a task per send)
    finally:
        await ormevents.close()
        hung.close()
