"""Scenario 3: ``insert_many`` / ``update_many`` of 10,000 documents, one event per document,
delivered end to end to one handler.

Baseline (the hand-rolled way): the driver's ``insert_many`` (batches of 1,000) or
``update_many``, then one ``apply_async`` per document, drained by the raw Celery worker.

ormevents: ``BenchDoc.insert_many(docs)`` and ``BenchDoc.update_many({"run": run}, {"$set":
{"n": -1}})`` in per-document mode (each document's ``bench_doc.created`` / ``bench_doc.updated``
event, with its diff, recorded in the document's outbox by its write and handed to the broker
in pipelined batches; each counted by the ``bench_doc.*`` handler). The documents of the update
batch are inserted beforehand with ``events="off"`` (not timed).

Correctness is checked on the way: the handler counts every ``bench_doc.updated`` event whose
diff is not ``{"n": [old, -1]}`` (:data:`benchmarks.handlers.BAD_DIFFS`); the scenario reports
that count, and each round's batch only completes once every document's event was counted.

The driver's bulk writes alone (no event, no task) are measured beside them as the server's
floor: no publish phase can be faster than the write it wraps (on SecantusDB, a few thousand
documents/s; set ``ORMEVENTS_BENCH_MONGO_URL`` for a real mongod).

Targets: >= 5x faster end to end than the baseline; publish phase >= 20,000 events/s.
"""

from __future__ import annotations

from benchmarks import raw_celery
from benchmarks.handlers import BAD_DIFFS
from benchmarks.harness.context import Bench
from benchmarks.harness.delivery import Batch, compare_batches
from benchmarks.harness.report import ScenarioResult
from benchmarks.models import BenchDoc

NUMBER = 3
FRESH_MONGO = True  # fills collections: on a fresh SecantusDB (Bench.fresh_mongo)
TITLE = "insert_many / update_many of 10,000 documents, per-document events, delivered"
CHUNK = 1000
DRIVER_INSERT = "driver insert_many alone (no events)"
DRIVER_UPDATE = "driver update_many alone (no events)"


def hand_rolled_batches(bench: Bench) -> dict[str, Batch]:
    """The baseline's insert and update batches (driver bulk write + one apply_async per document)."""
    collection = bench.db.raw_bulk

    async def insert(run: str, count: int) -> None:
        for start in range(0, count, CHUNK):
            docs = [{"_id": f"{run}:{n}", "run": run, "n": n} for n in range(start, min(count, start + CHUNK))]
            await collection.insert_many(docs)
            for doc in docs:
                raw_celery.noop.apply_async(args=[run, {"id": doc["_id"], "n": doc["n"]}], queue=raw_celery.QUEUE)

    async def prepare(run: str, count: int) -> None:
        await collection.insert_many([{"_id": f"{run}:{n}", "run": run, "n": n} for n in range(count)])

    async def update(run: str, count: int) -> None:
        await collection.update_many({"run": run}, {"$set": {"n": -1}})
        for n in range(count):
            raw_celery.noop.apply_async(args=[run, {"id": f"{run}:{n}", "changes": {"n": [n, -1]}}],
                                        queue=raw_celery.QUEUE)

    async def insert_alone(run: str, count: int) -> None:
        for start in range(0, count, CHUNK):
            await collection.insert_many([{"_id": f"{run}:{n}", "run": run, "n": n}
                                          for n in range(start, min(count, start + CHUNK))])

    async def update_alone(run: str, count: int) -> None:
        await collection.update_many({"run": run}, {"$set": {"n": -1}})

    return {DRIVER_INSERT: Batch(insert_alone, bench.sizes.bulk_docs, runs=0, unit="docs/s"),
            DRIVER_UPDATE: Batch(update_alone, bench.sizes.bulk_docs, runs=0, unit="docs/s", prepare=prepare),
            "hand-rolled insert_many + apply_async each": Batch(insert, bench.sizes.bulk_docs, unit="docs/s"),
            "hand-rolled update_many + apply_async each": Batch(update, bench.sizes.bulk_docs, unit="docs/s",
                                                                prepare=prepare)}


def ormevents_batches(bench: Bench) -> dict[str, Batch]:
    """ormevents' insert and update batches, or nothing when the bulk API is missing."""
    insert_many = getattr(BenchDoc, "insert_many", None)
    update_many = getattr(BenchDoc, "update_many", None)
    if insert_many is None or update_many is None:
        return {}

    async def insert(run: str, count: int) -> None:
        await insert_many([BenchDoc(run=run, n=n) for n in range(count)])

    async def prepare(run: str, count: int) -> None:
        await insert_many([BenchDoc(run=run, n=n) for n in range(count)], events="off")

    async def update(run: str, count: int) -> None:
        await update_many({"run": run}, {"$set": {"n": -1}})

    return {"ormevents insert_many": Batch(insert, bench.sizes.bulk_docs, unit="docs/s"),
            "ormevents update_many": Batch(update, bench.sizes.bulk_docs, unit="docs/s", prepare=prepare)}


async def run(bench: Bench) -> ScenarioResult:
    """Measure the baseline, and ormevents where it has a bulk API (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    await bench.workers()
    hand, orm = hand_rolled_batches(bench), ormevents_batches(bench)
    rounds = bench.sizes.throughput_rounds if orm else 1
    bench.redis.delete(BAD_DIFFS)
    async with bench.ormevents():
        rates = await compare_batches(bench, {**hand, **orm}, rounds)
    if orm:
        bad = int(bench.redis.get(BAD_DIFFS) or 0)
        result.notes.append(f"update_many per document: {rounds} x {bench.sizes.bulk_docs:,} bench_doc.updated "
                            f"events delivered, {bad} with a wrong diff")
        result.target("3: update_many per-document events with a wrong diff", bad, 0, unit="events")
    for name, (total, publishing) in rates.items():
        if name in (DRIVER_INSERT, DRIVER_UPDATE):  # no events: the write alone, the server's floor
            result.add(publishing, "info", name, p99=False)
            continue
        role = "baseline" if name.startswith("hand") else "ormevents"
        result.add(total, role, p99=False)
        result.add(publishing, role, p99=False)
    if not orm:
        result.status = "not available"
        result.notes.append("ormevents has no insert_many/update_many on EventModel yet: only the baseline was "
                            "measured (one round); the targets are not measured")
        for what in ("insert_many", "update_many"):
            result.target(f"3: {what} end to end >= 5x faster than hand-rolled", None, 5.0, higher_is_better=True)
            result.target(f"3: {what} publish phase >= 20,000 events/s", None, 20_000, unit="events/s",
                          higher_is_better=True)
        return result
    for what in ("insert_many", "update_many"):
        base = f"hand-rolled {what} + apply_async each"
        total = result.compare(f"{what}: end to end", f"ormevents {what}", base)
        result.target_ratio(f"3: {what} end to end >= 5x faster than hand-rolled", total, 5.0, higher_is_better=True)
        publish = result.row(f"ormevents {what}, publish phase").median
        result.target(f"3: {what} publish phase >= 20,000 events/s", publish, 20_000, unit="events/s",
                      higher_is_better=True)
    return result
