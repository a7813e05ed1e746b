"""Scenario 2: delivery throughput, 10,000 events to one no-op handler vs 10,000 raw Celery tasks.

Raw Celery publishes one ``apply_async`` at a time; ormevents publishes the same events with
``event_bus.publish_many`` 100 at a time (a backlog handed over together travels as
``ormevents.dispatch_batch`` messages of up to 32 events, each event still tracked, retried and
failed on its own), and, as information, one ``event_bus.publish`` at a time. Their workers
(``prefork -c 2``, same flags) consume meanwhile; a batch is done when every handler run / task
was counted in Redis. Rounds alternate the variants. A second comparison gives each event 4
handlers, against raw Celery doing 4 tasks per event.

Targets: events/s >= 2x raw Celery; with 4 handlers per event >= 1.0x raw Celery's events/s
(both judged on the ``publish_many`` variant; the one-by-one ratio is printed beside them).
"""

from __future__ import annotations

from benchmarks.harness.context import Bench
from benchmarks.harness.delivery import compare_batches, events, events_many, tasks
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
            "raw Celery, 1 task per event": tasks(one), "ormevents, 1 handler per event": events_many(one),
            "ormevents, 1 handler, one by one": events(one),
        }, rounds)
        rates |= await compare_batches(bench, {
            "raw Celery, 4 tasks per event": tasks(four, per_item=4),
            "ormevents, 4 handlers per event": events_many(four, 4),
            "ormevents, 4 handlers, one by one": events(four, 4),
        }, rounds)
    for name, (total, publishing) in rates.items():
        role = "baseline" if name.startswith("raw") else "info" if "one by one" in name else "ormevents"
        result.add(total, role, p99=False)
        result.add(publishing, "info", p99=False)
    single = result.compare("1 handler: events/s", "ormevents, 1 handler per event", "raw Celery, 1 task per event")
    fanned = result.compare("4 handlers: events/s", "ormevents, 4 handlers per event", "raw Celery, 4 tasks per event")
    result.compare("1 handler, one by one: events/s", "ormevents, 1 handler, one by one", "raw Celery, 1 task per event")
    result.compare("4 handlers, one by one: events/s", "ormevents, 4 handlers, one by one",
                   "raw Celery, 4 tasks per event")
    result.target_ratio("2: events/s with 1 handler >= 2x raw Celery", single, 2.0, higher_is_better=True)
    result.target_ratio("2: events/s with 4 handlers >= 1.0x raw Celery (4 tasks/event)", fanned, 1.0,
                  higher_is_better=True)
    result.notes.append("ormevents hands events over with publish_many, 100 at a time (dispatch_batch messages); "
                        "'one by one' awaits event_bus.publish per event")
    result.notes.append(f"{one * rounds:,} events per side (1 handler), {four * rounds:,} per side (4 handlers), "
                        f"in {rounds} alternating rounds; publish and drain overlap (the worker runs throughout)")
    return result
