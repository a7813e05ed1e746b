"""Scenario 11: fan-out, 1, 4 and 16 handlers per event vs the same number of raw Celery tasks.

For each fan-out the same number of handler runs happen on both sides: ``runs / fanout``
ormevents events (each matching ``fanout`` counting handlers), against ``runs`` raw Celery
``apply_async`` calls. ormevents hands its events over with ``event_bus.publish_many`` (100 at a
time, as scenario 2) and, as information, one ``event_bus.publish`` at a time. Rounds alternate
the variants. Rates are handler runs (tasks) per second, publish to last counted run.

Target: handler runs/s >= 1.0x raw tasks/s at every fan-out (judged on the ``publish_many``
variant; the one-by-one ratio is printed beside it).
"""

from __future__ import annotations

from benchmarks.handlers import FANOUTS
from benchmarks.harness.context import Bench
from benchmarks.harness.delivery import compare_batches, events, events_many, tasks
from benchmarks.harness.report import ScenarioResult

NUMBER = 11
TITLE = "fan-out: 1, 4, 16 handlers per event vs the same number of raw Celery tasks"


async def run(bench: Bench) -> ScenarioResult:
    """Measure every fan-out (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    await bench.workers()
    rounds = bench.sizes.throughput_rounds
    async with bench.ormevents():
        for fanout in FANOUTS:
            per_round = max(1, bench.sizes.fanout_runs // rounds // fanout)
            raw_label, orm_label = f"raw Celery, fan-out {fanout}", f"ormevents, fan-out {fanout}"
            single_label = f"ormevents, fan-out {fanout}, one by one"
            rates = await compare_batches(bench, {
                raw_label: tasks(per_round * fanout, unit="runs/s"),
                orm_label: events_many(per_round, fanout, unit="runs/s"),
                single_label: events(per_round, fanout, unit="runs/s"),
            }, rounds)
            result.add(rates[raw_label][0], "baseline", p99=False)
            result.add(rates[orm_label][0], "ormevents", p99=False)
            result.add(rates[single_label][0], "info", p99=False)
            ratio = result.compare(f"fan-out {fanout}: runs/s", orm_label, raw_label)
            result.compare(f"fan-out {fanout}, one by one: runs/s", single_label, raw_label)
            result.target_ratio(f"11: fan-out {fanout}: handler runs/s >= 1.0x raw tasks/s", ratio, 1.0,
                          higher_is_better=True)
    return result
