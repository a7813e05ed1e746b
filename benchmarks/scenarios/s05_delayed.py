"""Scenario 5: 100,000 delayed events pending (delay 1 h): worker memory and Redis bytes.

ormevents keeps delayed events in its Redis schedule (the worker's poller only looks at the
next due time); Celery ``countdown`` tasks are fetched by the worker at once and held in its
memory (and in kombu's ``unacked`` hash) until due. Measured on each side: the worker's RSS
(main process + pool children) and Redis ``used_memory``, before publishing and once every
message is pending (for Celery: once the worker holds them, up to a time limit). Celery's
side sends fewer messages in the full run (30,000: sending and ingesting 100,000 would take
about 3 minutes more); both sides are compared per 1,000 pending.

Targets: ormevents' worker RSS growth <= 50 MB; Redis <= 600 B per pending event.
Runs last: what it leaves pending stays until the servers stop.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks import raw_celery
from benchmarks.harness.context import Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.workers import CeleryWorker
from ormevents import Event, event_bus, get_runtime

NUMBER = 5
TITLE = "100,000 delayed events pending (delay 1 h): worker RSS and Redis bytes"
DELAY = 3600
CONCURRENCY = 64
SETTLE = 2.0
MB = 1024 * 1024


def used_memory(bench: Bench) -> int:
    """Redis ``used_memory`` in bytes."""
    return int(bench.redis.info("memory")["used_memory"])


async def ormevents_side(bench: Bench, worker: CeleryWorker, count: int, result: ScenarioResult) -> None:
    """Publish ``count`` delayed events, ``CONCURRENCY`` at a time, and measure."""
    rss, memory = worker.rss_bytes(), used_memory(bench)
    run = bench.run_id("delayed")
    began = time.perf_counter()
    async with bench.ormevents():
        for start in range(0, count, CONCURRENCY):
            await asyncio.gather(*(event_bus.publish(Event(name="bench.fan1", data={"run": run, "i": i}), delay=DELAY)
                                   for i in range(start, min(count, start + CONCURRENCY))))
        published = time.perf_counter() - began
        pending = await get_runtime().publisher.pending()  # type: ignore[attr-defined]  # CeleryPublisher's
    await asyncio.sleep(SETTLE)
    result.value("ormevents: events pending in the schedule", "ormevents", "events", pending)
    result.value("ormevents: publish rate (delayed)", "info", "events/s", count / published)
    growth = (worker.rss_bytes() - rss) / MB
    result.value("ormevents: worker RSS growth", "ormevents", "MB", growth)
    result.value("ormevents: worker RSS growth per 1,000 pending", "ormevents", "MB", growth * 1000 / count)
    result.value("ormevents: Redis bytes per pending event", "ormevents", "B", (used_memory(bench) - memory) / count)


async def celery_side(bench: Bench, worker: CeleryWorker, count: int, result: ScenarioResult) -> None:
    """Send ``count`` countdown tasks (one thread), wait until the worker holds them, and measure."""
    rss, memory = worker.rss_bytes(), used_memory(bench)
    run = bench.run_id("countdown")

    def send_all() -> None:
        for i in range(count):
            raw_celery.noop.apply_async(args=[run, {"i": i}], countdown=DELAY, queue=raw_celery.QUEUE)

    began = time.perf_counter()
    await asyncio.to_thread(send_all)
    published = time.perf_counter() - began
    deadline, held = time.monotonic() + bench.sizes.ingest_wait, 0
    while time.monotonic() < deadline:
        held = int(bench.redis.hlen("unacked"))  # kombu's hash of messages a worker holds
        if held >= count and not bench.redis.llen(raw_celery.QUEUE):
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(SETTLE)
    result.value("raw Celery: countdown tasks held by the worker", "baseline", "events", held)
    result.value("raw Celery: publish rate (countdown)", "info", "events/s", count / published)
    growth = (worker.rss_bytes() - rss) / MB
    result.value("raw Celery: worker RSS growth", "baseline", "MB", growth)
    result.value("raw Celery: worker RSS growth per 1,000 held", "baseline", "MB", growth * 1000 / max(held, 1))
    result.value("raw Celery: Redis bytes per pending task", "baseline", "B", (used_memory(bench) - memory) / count)
    if held < count:
        result.notes.append(f"the raw worker held {held:,} of {count:,} countdown tasks after "
                            f"{bench.sizes.ingest_wait:.0f} s; its RSS growth is for those")


async def run(bench: Bench) -> ScenarioResult:
    """Measure both sides, one after the other (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    orm_worker, raw_worker = await bench.workers()
    count = bench.sizes.delayed
    await ormevents_side(bench, orm_worker, count, result)
    await celery_side(bench, raw_worker, bench.sizes.delayed_raw, result)
    result.compare("worker RSS growth per 1,000 pending", "ormevents: worker RSS growth per 1,000 pending",
                   "raw Celery: worker RSS growth per 1,000 held")
    result.compare("Redis bytes per pending", "ormevents: Redis bytes per pending event",
                   "raw Celery: Redis bytes per pending task")
    result.target(f"5: worker RSS growth with {count:,} pending <= 50 MB",
                  result.row("ormevents: worker RSS growth").median, 50.0, unit="MB")
    result.target("5: Redis bytes per pending event <= 600 B",
                  result.row("ormevents: Redis bytes per pending event").median, 600.0, unit="B")
    result.notes.append("not interleaved: a memory figure, measured once per side on the running workers")
    return result
