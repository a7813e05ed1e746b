"""Scenario 4: latency from the write to the start of the handler, 200 sequential events.

Each handler (or task) pushes ``time.time()`` to a Redis list as its first step; the
latency is that minus the time just before the write (or send). One operation at a time,
with a short pause between them (low load). Variants, interleaved round by round:

* Celery's own ``apply_async`` -> task start (the floor);
* hand-rolled ``update_one`` + ``apply_async`` -> task start;
* ormevents ``save()`` -> handler start (dispatch task, then the handler's run task).

Targets: ormevents p50 <= 5 ms, p99 <= 25 ms, and not worse than Celery's own (p50 ratio <= 1.0x).
"""

from __future__ import annotations

import asyncio
import time

from benchmarks import raw_celery
from benchmarks.harness.context import Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import interleave
from benchmarks.models import LatencyDoc

NUMBER = 4
TITLE = "latency write -> handler start, 200 sequential events"
PAUSE = 0.002
TIMEOUT = 30


async def run(bench: Bench) -> ScenarioResult:
    """Measure the three variants (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    await bench.workers()
    keys = {name: bench.run_id(f"latency-{name}") for name in ("celery", "hand", "orm")}
    raw = bench.db.raw_latency
    await raw.insert_one({"_id": 1, "n": 0})

    async def started(key: str, since: float) -> float:
        # waited for on a thread: the loop stays free, as in an application (save() hands its
        # event over on the loop once it has returned)
        found = await asyncio.to_thread(bench.redis.blpop, [key], TIMEOUT)
        if found is None:
            raise TimeoutError(f"no handler start recorded under {key} within {TIMEOUT} s")
        return float(found[1]) - since

    async with bench.ormevents():
        doc = await LatencyDoc.create(key=keys["orm"])

        async def celery_only(i: int) -> float:
            await asyncio.sleep(PAUSE)
            since = time.time()
            raw_celery.stamp.apply_async(args=[keys["celery"]], queue=raw_celery.QUEUE)
            return await started(keys["celery"], since)

        async def hand_rolled(i: int) -> float:
            await asyncio.sleep(PAUSE)
            since = time.time()
            await raw.update_one({"_id": 1}, {"$set": {"n": i}})
            raw_celery.stamp.apply_async(args=[keys["hand"], {"id": 1, "changes": {"n": [i - 1, i]}}],
                                         queue=raw_celery.QUEUE)
            return await started(keys["hand"], since)

        async def orm_save(i: int) -> float:
            await asyncio.sleep(PAUSE)
            since = time.time()
            doc.n = i + 1
            await doc.save()
            return await started(keys["orm"], since)

        series = await interleave({"apply_async -> task start": celery_only,
                                   "hand-rolled update_one + apply_async -> task start": hand_rolled,
                                   "ormevents save() -> handler start": orm_save},
                                  bench.sizes.latency_events, bench.sizes.rounds, warmup=5)
    celery = result.add(series["apply_async -> task start"], "baseline")
    result.add(series["hand-rolled update_one + apply_async -> task start"], "baseline")
    orm = result.add(series["ormevents save() -> handler start"], "ormevents")
    own = result.compare("save() -> handler / Celery's apply -> start", orm.label, celery.label)
    result.compare("save() -> handler / hand-rolled", orm.label, "hand-rolled update_one + apply_async -> task start")
    result.target("4: write -> handler start p50 <= 5 ms", orm.median, 5.0, unit="ms")
    result.target("4: write -> handler start p99 <= 25 ms", orm.p99, 25.0, unit="ms")
    result.target_ratio("4: p50 not worse than Celery's own apply -> start", own, 1.0)
    return result
