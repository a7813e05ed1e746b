"""Scenario 7: one page of 50 failed jobs out of 100,000, with a filter (no baseline).

The store is filled with the documented recording call (``publisher.failed_store.record``,
pipelined 1,000 per round trip): jobs spread over 10 handlers and 3 exception types, each with
a ~200-character event and a 20-line traceback. Then, through the public API
(``event_bus.get_failed_jobs``), pages are read by cursor: filtered by handler (10,000
matching), by handler and exception (an intersection), and unfiltered, from the newest on.

Target: a filtered page's median <= 10 ms.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness.context import Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import Series
from ormevents import Event, event_bus, get_runtime
from ormevents.jobs import FailedJob

NUMBER = 7
TITLE = "page of 50 failed jobs out of 100,000, with a filter"
QUEUE = "bench:failed"
HANDLERS = [f"shop.handler_{n}" for n in range(10)]
ERRORS = ["builtins.TimeoutError", "builtins.ValueError", "builtins.KeyError"]
PAGE = 50


def fill(count: int) -> float:
    """Record ``count`` failed jobs, pipelined; returns the seconds taken."""
    store = get_runtime().publisher.failed_store  # type: ignore[attr-defined]  # CeleryPublisher's
    began, base = time.perf_counter(), time.time() - count
    pipe = store.client.pipeline(transaction=False)
    for n in range(count):
        event = Event(name=f"order.step{n % 7}", data={"n": n, "note": "x" * 200})
        handler = HANDLERS[n % len(HANDLERS)]
        store.record(FailedJob(
            id=FailedJob.make_id(str(event.id), handler), queue=QUEUE, handler=handler, event=event.to_dict(),
            event_id=str(event.id), event_name=event.name, model=event.model, error_type=ERRORS[n % len(ERRORS)],
            error_message=f"failure {n}", traceback="Traceback ...\n" * 20, attempts=4,
            failed_at=datetime.fromtimestamp(base + n, UTC)), pipe=pipe)
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - began


async def walk(label: str, pages: int, **filters: Any) -> Series:
    """Read up to ``pages`` pages matching ``filters`` by cursor; one sample (ms) per page."""
    series, cursor = Series(label, "ms"), None
    samples = []
    for _ in range(pages):
        began = time.perf_counter()
        page = await event_bus.get_failed_jobs(limit=PAGE, cursor=cursor, **filters)
        samples.append((time.perf_counter() - began) * 1e3)
        cursor = page.next_cursor
        if cursor is None:
            break
    series.add_round(samples)
    return series


async def run(bench: Bench) -> ScenarioResult:
    """Fill the store, then time the pages (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    jobs = bench.sizes.failed_jobs
    async with bench.ormevents(QUEUE, failed_jobs={"max_count": jobs + 1, "max_age_days": 3650}):
        seconds = fill(jobs)
        result.notes.append(f"filled {jobs:,} failed jobs in {seconds:.1f} s ({jobs / seconds:,.0f}/s, pipelined)")
        assert await event_bus.count_failed() == jobs
        await walk("warm-up", 3)
        by_handler = result.add(await walk("page of 50, filter handler (1 in 10)", bench.sizes.pages,
                                           handler=HANDLERS[3]), "ormevents")
        result.add(await walk("page of 50, filter handler + exception", bench.sizes.pages,
                              handler=HANDLERS[3], exception=ERRORS[1]), "ormevents")
        result.add(await walk("page of 50, no filter", bench.sizes.pages), "ormevents")
    result.target("7: filtered page of 50 out of 100,000, median <= 10 ms", by_handler.median, 10.0, unit="ms")
    leftovers = bench.redis.keys(f"{QUEUE}:*")
    if leftovers:
        bench.redis.delete(*leftovers)
    return result
