"""Scenario 14: the event history (issue 16): one document's history, and a replay to one handler.

* **History.** One ``bench_history`` document written 1,000 times through ormevents (1 create,
  999 updates, the outbox on, cleaned up), beside 50 other documents with 20 events each. Timed:
  ``await BenchHistory.history(id)`` (the 1,000 entries, summaries decoded lazily), the same
  with every entry's diff decoded, and, as the "before", the naive store the memo measured: one
  ``_oe_events``-style row per event with an index on ``(c, o, s)``, read sorted.
* **Replay.** A corpus of stored events (buckets written as the clean-up writes them) replayed
  with ``event_bus.replay`` to ``bench.replay``, a counting no-op handler the benchmark worker
  imports (``prefork -c 2``): how fast the replay sends, and how fast the worker has run them
  all (from the start of the replay to the last run counted).

Targets (issue 16): history of 1,000 events <= 20 ms; replay >= 2,000 events/s to a no-op
handler with one worker.
"""

from __future__ import annotations

import time
import uuid

from benchmarks.harness.context import QUEUE, Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import Series
from ormevents import Event, EventModel, event_bus, flush
from ormevents.delivery.outbox.history import HistoryEntry
from ormevents.delivery.outbox.history_store import bucket_updates
from ormevents.delivery.outbox.records import HISTORY_COLLECTION, build_pending, indexes, now

NUMBER = 14
FRESH_MONGO = True  # fills collections: on a fresh SecantusDB (Bench.fresh_mongo)
TITLE = "event history: one document's 1,000 events, and a replay to one handler"
READS = 40


class BenchHistory(EventModel):
    _collection = "bench_history"
    email: str
    balance: int = 0
    note: str = "x" * 200


async def history_reads(bench: Bench, result: ScenarioResult, events: int) -> Series:
    """Write the document's events, then time its history (see module doc)."""
    async with bench.ormevents("bench:history-idle"):  # no worker consumes: only the history matters
        document = await BenchHistory.create(email="a@example.com")
        for n in range(events - 1):
            await document.update(balance=n + 1)
        for k in range(50):
            other = await BenchHistory.create(email=f"{k}@example.com")
            for n in range(20):
                await other.update(balance=n + 1)
        await flush(cleanup=True)
        assert len(await BenchHistory.history(document.id)) == events
        lazy, decoded = Series(f"history of {events:,} events", "ms"), Series("... with every diff decoded", "ms")
        samples: tuple[list[float], list[float]] = ([], [])
        for _ in range(READS):
            began = time.perf_counter()
            entries = await BenchHistory.history(document.id)
            samples[0].append((time.perf_counter() - began) * 1e3)
            for entry in entries:
                _ = entry.changes
            samples[1].append((time.perf_counter() - began) * 1e3)
        lazy.add_round(samples[0])
        decoded.add_round(samples[1])
        result.add(lazy, "ormevents")
        result.add(decoded, "ormevents")
        result.add(await naive_rows(bench, entries), "baseline")
    bench.drop_queue("bench:history-idle")
    return lazy


async def naive_rows(bench: Bench, entries: list[HistoryEntry]) -> Series:
    """The same events as one row each, indexed ``(c, o, s)``, read sorted (the memo's design)."""
    rows = bench.db["bench_history_rows"]
    await rows.drop()
    await rows.create_index([("c", 1), ("o", 1), ("s", 1)])
    target = uuid.uuid4().hex
    await rows.insert_many([{"_id": f"{target}:{n}", "c": "bench_history", "o": target, "s": n,
                             "w": entry.wire} for n, entry in enumerate(entries)])
    series, samples = Series("naive: one row per event, indexed", "ms"), []
    for _ in range(READS):
        began = time.perf_counter()
        await rows.find({"c": "bench_history", "o": target}, {"w": 1, "s": 1}).sort("s", 1).to_list(None)
        samples.append((time.perf_counter() - began) * 1e3)
    series.add_round(samples)
    await rows.drop()
    return series


async def replay_runs(bench: Bench, result: ScenarioResult, events: int) -> tuple[float, float]:
    """Store ``events`` events in buckets, replay them to ``bench.replay``; (sent/s, handled/s)."""
    await bench.workers()
    run = bench.run_id("replay")
    history = bench.db[HISTORY_COLLECTION]
    for keys, options in indexes(HISTORY_COLLECTION):
        await history.create_index(keys, **options)
    per_document = 100
    records = [build_pending(Event(name="bench_replay.updated", object_id=n // per_document,
                                   data={"run": run, "n": n, "note": "x" * 200}, changes={"n": (n - 1, n)}),
                             home="bench_replay", key=n // per_document) for n in range(events)]
    await history.bulk_write(bucket_updates(records, now(), None), ordered=False)
    async with bench.ormevents(QUEUE):
        began = time.perf_counter()
        summary = await event_bus.replay(handler="bench.replay", model="bench_replay")
        sent = time.perf_counter()
        done = await bench.wait_count(run, events)
    assert summary.sent == events, summary
    await history.delete_many({"c": "bench_replay"})
    sending, handled = events / (sent - began), events / (done - began)
    result.value("replay: events sent per second", "info", "events/s", sending)
    result.value("replay: events handled per second (one worker, prefork -c 2)", "ormevents", "events/s", handled)
    return sending, handled


async def run(bench: Bench) -> ScenarioResult:
    """Both measurements (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    events, replayed = bench.sizes.history_events, bench.sizes.replay_events
    lazy = await history_reads(bench, result, events)
    sending, handled = await replay_runs(bench, result, replayed)
    result.target(f"14: history of {events:,} events, median <= 20 ms", lazy.median, 20.0, unit="ms")
    result.target("14: replay >= 2,000 events/s to a no-op handler, one worker (handled)", handled, 2000,
                  unit="events/s", higher_is_better=True)
    result.notes.append(f"history: {events:,} events of one document among 50 others, {READS} reads; replay: "
                        f"{replayed:,} stored events sent at {sending:,.0f}/s, all handled at {handled:,.0f}/s")
    await bench.db["bench_history"].drop()
    return result
