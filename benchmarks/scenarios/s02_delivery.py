"""Scenario 2: delivery throughput, 10,000 events to one no-op handler vs 10,000 raw Celery tasks.

Both sides publish one by one from this process while their worker (``prefork -c 2``, same
flags) consumes; a batch is done when every handler run / task was counted in Redis. Rounds
alternate the sides. A second comparison gives each event 4 handlers, against raw Celery
doing 4 tasks per event.

Targets: events/s >= 2x raw Celery; with 4 handlers per event >= 1.0x raw Celery's events/s.
"""

from __future__ import annotations

from benchmarks.harness.context import Bench
from benchmarks.harness.delivery import compare_batches, events, tasks
from benchmarks.harness.report import ScenarioResult

NUMBER = 2
TITLE = "delivery throughput: 10,000 events, one handler (and 4 handlers) vs raw Celery tasks"


async def run(bench: Bench) -> ScenarioResult:
    """Measure both comparisons (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    await bench.workers()
    rounds = bench.sizes.throughput_rounds
    one, four = bench.sizes.events // rounds, bench.sizes.events_fan4 // rounds
    async with bench.ormevents():
        rates = await compare_batches(bench, {
            "raw Celery, 1 task per event": tasks(one), "ormevents, 1 handler per event": events(one),
        }, rounds)
        rates |= await compare_batches(bench, {
            "raw Celery, 4 tasks per event": tasks(four, per_item=4), "ormevents, 4 handlers per event": events(four, 4),
        }, rounds)
    for name, (total, publishing) in rates.items():
        role = "baseline" if name.startswith("raw") else "ormevents"
        result.add(total, role, p99=False)
        result.add(publishing, "info", p99=False)
    single = result.compare("1 handler: events/s", "ormevents, 1 handler per event", "raw Celery, 1 task per event")
    fanned = result.compare("4 handlers: events/s", "ormevents, 4 handlers per event", "raw Celery, 4 tasks per event")
    result.target_ratio("2: events/s with 1 handler >= 2x raw Celery", single, 2.0, higher_is_better=True)
    result.target_ratio("2: events/s with 4 handlers >= 1.0x raw Celery (4 tasks/event)", fanned, 1.0,
                  higher_is_better=True)
    result.notes.append(f"{one * rounds:,} events per side (1 handler), {four * rounds:,} per side (4 handlers), "
                        f"in {rounds} alternating rounds; publish and drain overlap (the worker runs throughout)")
    return result
