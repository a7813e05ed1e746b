"""Scenario 8: Beanie with ``@after_event`` calling ``apply_async``, doing scenarios 1 and 3.

Runs where Beanie installs (the ``bench`` extra); otherwise ``not available``. Beanie uses
the same PyMongo ``AsyncMongoClient`` database.

* Scenario 1's write (a 2-field update of one document, publishing side only), interleaved:
  Beanie ``save()`` + ``@after_event(Save)``, Beanie ``replace()`` + ``@after_event(Replace)``,
  and ormevents ``save()``. Beanie's ``save()`` goes through ``findAndModify``, whose cost on
  SecantusDB grows with the collection size (the collection holds one document here);
  ``replace()`` is its fast path.
* Scenario 3's bulk write: Beanie's ``insert_many`` fires no event action (checked and
  reported), so Beanie's way to get per-document events is ``insert()`` one by one, against
  ormevents ``create()`` one by one; both delivered end to end to one handler / task.

Target: ormevents ahead on both (ratio of medians < 1.0x for latency, > 1.0x for documents/s).
"""

from __future__ import annotations

from typing import Any

from benchmarks import raw_celery
from benchmarks.harness.context import IDLE_QUEUE, Bench
from benchmarks.harness.delivery import Batch, compare_batches
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import interleave
from benchmarks.models import STATUSES, Account, BenchDoc
from benchmarks.scenarios.s01_write_latency import two_fields

NUMBER = 8
TITLE = "Beanie (@after_event + apply_async) doing scenarios 1 and 3"
ROUTE: dict[str, str] = {"queue": raw_celery.IDLE_QUEUE, "run": "beanie"}
"""Where the Beanie documents' actions send their task (switched between the two parts)."""
FIRED: dict[str, int] = {"actions": 0}
"""How many times an ``@after_event`` action ran (to show which writes fire none)."""


def beanie_models() -> tuple[type[Any], type[Any]] | None:
    """The two Beanie documents, or ``None`` when Beanie is not installed."""
    try:
        from beanie import Document, Insert, Replace, Save, after_event
    except ImportError:
        return None

    def send(doc: Any, changes: dict[str, Any]) -> None:
        FIRED["actions"] += 1
        raw_celery.noop.apply_async(args=[ROUTE["run"], {"id": str(doc.id), "changes": changes}],
                                    queue=ROUTE["queue"])

    class BeanieAccount(Document):  # type: ignore[misc]  # Beanie's base is untyped here
        email: str
        balance: int = 0
        status: str = STATUSES[0]

        class Settings:
            name = "beanie_accounts"

        @after_event(Save, Replace)
        def publish(self) -> None:
            send(self, {"balance": self.balance, "status": self.status})

    class BeanieItem(Document):  # type: ignore[misc]  # Beanie's base is untyped here
        run: str
        n: int = 0

        class Settings:
            name = "beanie_items"

        @after_event(Insert)
        def publish(self) -> None:
            send(self, {"n": self.n})

    return BeanieAccount, BeanieItem


async def latency(bench: Bench, account: Any, result: ScenarioResult) -> None:
    """Scenario 1's comparison (publishing side only)."""
    saved, replaced = await account(email="s@x").insert(), await account(email="r@x").insert()
    async with bench.ormevents(IDLE_QUEUE):
        orm = await Account.create(email="o@x")

        async def beanie_save(i: int) -> None:
            saved.balance, saved.status = two_fields(i).values()
            await saved.save()

        async def beanie_replace(i: int) -> None:
            replaced.balance, replaced.status = two_fields(i).values()
            await replaced.replace()

        async def orm_save(i: int) -> None:
            orm.balance, orm.status = two_fields(i).values()
            await orm.save()

        series = await interleave({"Beanie save() + after_event apply_async": beanie_save,
                                   "Beanie replace() + after_event apply_async": beanie_replace,
                                   "ormevents save()": orm_save}, bench.sizes.beanie_ops, bench.sizes.rounds)
    for name, s in series.items():
        result.add(s, "ormevents" if name.startswith("ormevents") else "baseline")
    for name in ("Beanie save() + after_event apply_async", "Beanie replace() + after_event apply_async"):
        ratio = result.compare(f"save() / {name}", "ormevents save()", name)
        result.target_ratio(f"8: save() latency ahead of {name.split(' +')[0]} (< 1.0x)", ratio, 1.0)
    bench.drop_queue(IDLE_QUEUE)
    bench.drop_queue(raw_celery.IDLE_QUEUE)


async def bulk(bench: Bench, item: Any, result: ScenarioResult) -> None:
    """Scenario 3's comparison, document by document, delivered end to end."""
    ROUTE.update(queue=raw_celery.QUEUE, run=bench.run_id("beanie-insert-many"))
    before = FIRED["actions"]
    await item.insert_many([item(run=ROUTE["run"], n=n) for n in range(10)])
    result.notes.append(f"Beanie insert_many of 10 documents fired {FIRED['actions'] - before} "
                        "after_event(Insert) actions: bulk writes publish nothing")

    async def beanie_inserts(run: str, count: int) -> None:
        ROUTE["run"] = run
        for n in range(count):
            await item(run=run, n=n).insert()

    async def orm_creates(run: str, count: int) -> None:
        for n in range(count):
            await BenchDoc.create(run=run, n=n)

    size = bench.sizes.beanie_docs // bench.sizes.throughput_rounds
    async with bench.ormevents():
        rates = await compare_batches(bench, {"Beanie insert() one by one, delivered": Batch(beanie_inserts, size,
                                                                                              unit="docs/s"),
                                              "ormevents create() one by one, delivered": Batch(orm_creates, size,
                                                                                                unit="docs/s")},
                                      bench.sizes.throughput_rounds)
    for name, (total, _) in rates.items():
        result.add(total, "ormevents" if name.startswith("ormevents") else "baseline", p99=False)
    ratio = result.compare("create() / Beanie insert(): docs/s", "ormevents create() one by one, delivered",
                           "Beanie insert() one by one, delivered")
    result.target_ratio("8: per-document writes delivered, ahead of Beanie (> 1.0x docs/s)", ratio, 1.0,
                  higher_is_better=True)


async def run(bench: Bench) -> ScenarioResult:
    """Both parts, or ``not available`` without Beanie (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    models = beanie_models()
    if models is None:
        result.status = "not available"
        result.notes.append("beanie is not installed (pip install -e '.[bench]')")
        return result
    from beanie import init_beanie

    await bench.workers()
    await init_beanie(database=bench.db, document_models=list(models))
    ROUTE.update(queue=raw_celery.IDLE_QUEUE, run="beanie")
    await latency(bench, models[0], result)
    await bulk(bench, models[1], result)
    return result
