"""Publishing without a worker: bad input raises before any I/O; a dead broker never blocks the loop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import (
    BrokerUnavailableError,
    Event,
    InvalidEventNameError,
    UnserializableValueError,
    event_bus,
)
from ormevents.errors import ConfigurationError, NotInitializedError
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def queue() -> str:
    return f"p{uuid.uuid4().hex[:8]}:events"


def sent(rdb: redis.Redis, queue: str) -> tuple[int, int]:
    """(messages on the broker queue, entries in the schedule)."""
    return rdb.llen(queue), rdb.zcard(f"{queue}:schedule")


async def test_invalid_input_raises_before_anything_is_sent(bus: Any, rdb: redis.Redis, queue: str) -> None:
    with pytest.raises(InvalidEventNameError):
        await bus.publish(Event(name="Not A Name"))
    with pytest.raises(UnserializableValueError, match="data.when"):
        await bus.publish(Event(name="user.created", data={"when": object()}))
    with pytest.raises(TypeError, match="Event"):
        await bus.publish({"name": "user.created"})
    with pytest.raises(ConfigurationError, match="not both"):
        await bus.publish(Event(name="user.created"), delay=5, eta=None or __import__("datetime").datetime.now())
    with pytest.raises(ConfigurationError, match="seconds"):
        await bus.publish(Event(name="user.created"), delay="soon")
    assert sent(rdb, queue) == (0, 0)
    await bus.publish(Event(name="user.created"))
    await bus.publish(Event(name="user.created"), delay=60)
    assert sent(rdb, queue) == (1, 1)
    assert await ormevents.get_runtime().publisher.pending() == 1


async def test_event_bus_without_init_or_without_celery(mongo_uri: str) -> None:
    await ormevents.close()
    with pytest.raises(NotInitializedError):
        await event_bus.publish(Event(name="user.created"))
    runtime = await ormevents.init(mongo_uri=mongo_uri, database="delivery_tests")
    await event_bus.publish(Event(name="user.created"))
    assert runtime.publisher.names() == ["user.created"]  # type: ignore[attr-defined]  # RecordingPublisher
    with pytest.raises(ConfigurationError, match="redis_uri"):
        await event_bus.cancel(uuid.uuid4())
    await ormevents.close()


# Network I/O on the loop would stall it for a whole connect/retry cycle (>= 0.5 s here); a
# busy 2-core CI machine adds scheduler/GC noise of up to ~70 ms to a 5 ms tick, so the bound
# sits between the two. Typical measured lag is 1-2 ms.
MAX_LOOP_LAG = 0.25


async def _max_loop_lag(work: Any) -> tuple[float, Any, float]:
    """Run ``work`` while a ticker measures the worst loop lag; return (lag, outcome, seconds)."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    try:
        outcome: Any = await work
    except Exception as exc:
        outcome = exc
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return max(lags), outcome, elapsed


async def test_unreachable_broker_raises_typed_error_without_blocking_the_loop(mongo_uri: str, redis_uri: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    await ormevents.init(mongo_uri=mongo_uri, database="delivery_tests", redis_uri=redis_uri, broker_url=dead,
                         event_config={"queue_name": "p:dead", "publish_retry": {"max_retries": 3, "interval_step": 0.2, "timeout": 1.0}})
    try:
        lag, outcome, elapsed = await _max_loop_lag(event_bus.publish(Event(name="user.created")))
    finally:
        await ormevents.close()
    print(f"\nunreachable broker: publish failed after {elapsed:.3f} s, max loop lag {lag * 1000:.1f} ms")
    assert isinstance(outcome, BrokerUnavailableError), outcome
    assert 0.3 <= elapsed <= 3.0, elapsed        # the publish retries ran (0 + 0.2 + 0.4 s), bounded
    assert lag < MAX_LOOP_LAG, lag


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not done.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        done.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


async def test_silent_broker_and_redis_time_out_without_blocking_the_loop(mongo_uri: str, blackhole: int) -> None:
    silent = f"redis://127.0.0.1:{blackhole}/0"
    await ormevents.init(mongo_uri=mongo_uri, database="delivery_tests", redis_uri=silent,
                         event_config={"queue_name": "p:silent", "publish_retry": {"max_retries": 0, "timeout": 0.5}, "redis_check": "skip"})
    try:
        lag_now, outcome_now, elapsed_now = await _max_loop_lag(event_bus.publish(Event(name="user.created")))
        lag_later, outcome_later, elapsed_later = await _max_loop_lag(event_bus.publish(Event(name="user.created"), delay=30))
    finally:
        await ormevents.close()
    print(f"\nsilent broker: {elapsed_now:.3f} s / silent Redis schedule: {elapsed_later:.3f} s, "
          f"max loop lag {max(lag_now, lag_later) * 1000:.1f} ms")
    assert isinstance(outcome_now, BrokerUnavailableError), outcome_now
    assert isinstance(outcome_later, BrokerUnavailableError), outcome_later
    assert elapsed_now <= 3.0 and elapsed_later <= 3.0, (elapsed_now, elapsed_later)  # cut at 2 x 0.5 + 1 s
    assert max(lag_now, lag_later) < MAX_LOOP_LAG, (lag_now, lag_later)
