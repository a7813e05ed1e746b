"""Scenario 9: event-loop lag while 16 coroutines save concurrently, each save emitting an event.

A ticker coroutine sleeps 1 ms in a loop and records how late it wakes up (the lag every
other coroutine of a web app would see). Variants, interleaved round by round: raw
``update_one`` (the driver alone), the hand-rolled way with a synchronous ``apply_async``
(which stalls the loop for every send), the same with ``to_thread``, and ormevents ``save()``
(published through Celery from its own send threads). Each coroutine writes its own document;
messages go to queues no worker consumes.

Target: ormevents' lag p99 <= 2 ms. Throughput (saves/s) is reported beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from benchmarks import raw_celery
from benchmarks.harness.context import IDLE_QUEUE, Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import Series
from benchmarks.harness.writes import HandRolled
from benchmarks.models import STATUSES, Account

NUMBER = 9
TITLE = "event-loop lag with 16 coroutines saving concurrently"
WRITERS = 16
TICK = 0.001

Writer = Callable[[int, int], Awaitable[None]]  # (writer index, op counter)


async def measure(write: Writer, ops: int) -> tuple[list[float], float]:
    """Run ``ops`` writes over :data:`WRITERS` coroutines; the ticker's lags (ms) and ops/s."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append((time.perf_counter() - began - TICK) * 1e3)

    async def writer(w: int) -> None:
        for i in range(ops // WRITERS):
            await write(w, i)

    tick = asyncio.create_task(ticker())
    began = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    elapsed = time.perf_counter() - began
    stop.set()
    await tick
    return lags, (ops // WRITERS * WRITERS) / elapsed


async def run(bench: Bench) -> ScenarioResult:
    """Measure the four variants (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    hands = [await HandRolled(bench.db.raw_concurrent, w).insert({"balance": 0, "status": STATUSES[0]})
             for w in range(WRITERS)]
    async with bench.ormevents(IDLE_QUEUE):
        docs = [await Account.create(email=f"w{w}@x") for w in range(WRITERS)]

        async def orm_save(w: int, i: int) -> None:
            docs[w].balance, docs[w].status = i + 1, STATUSES[i % 2]
            await docs[w].save()

        variants: dict[str, tuple[str, Writer]] = {
            "raw update_one": ("baseline", lambda w, i: hands[w].update({"balance": i, "status": STATUSES[i % 2]})),
            "hand-rolled, sync apply_async": (
                "baseline", lambda w, i: hands[w].write({"balance": -i, "status": STATUSES[i % 2]})),
            "hand-rolled, to_thread(apply_async)": (
                "baseline", lambda w, i: hands[w].write_threaded({"balance": i + 7, "status": STATUSES[i % 2]})),
            "ormevents save()": ("ormevents", orm_save),
        }
        lag = {name: Series(f"{name}: loop lag", "ms") for name in variants}
        rate = {name: Series(f"{name}: throughput", "saves/s") for name in variants}
        await measure(orm_save, WRITERS * 2)  # warm the send threads and connections
        for r in range(bench.sizes.rounds):
            for name in (list(variants) if r % 2 == 0 else list(reversed(variants))):
                lags, per_second = await measure(variants[name][1], bench.sizes.concurrent_ops // bench.sizes.rounds)
                lag[name].add_round(lags)
                rate[name].add_round([per_second])
    for name, (role, _) in variants.items():
        result.add(lag[name], role)
        result.add(rate[name], role, p99=False)
    orm_lag = result.row("ormevents save(): loop lag")
    result.compare("lag median / hand-rolled sync", "ormevents save(): loop lag", "hand-rolled, sync apply_async: loop lag")
    result.compare("throughput / hand-rolled sync", "ormevents save(): throughput",
                   "hand-rolled, sync apply_async: throughput")
    result.target("9: loop lag p99 with 16 concurrent saves <= 2 ms", orm_lag.p99, 2.0, unit="ms")
    bench.drop_queue(IDLE_QUEUE)
    bench.drop_queue(raw_celery.IDLE_QUEUE)
    return result
