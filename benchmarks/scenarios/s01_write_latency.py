"""Scenario 1: latency of ``save()`` of a 2-field update, against the hand-rolled way.

Variants, interleaved round by round, each changing ``balance`` and ``status`` of one
document (publishing side only: the messages go to queues no worker consumes):

* raw ``update_one`` — the floor;
* hand-rolled ``update_one`` + ``apply_async`` (sync in the coroutine) — the target's reference;
* the same with ``asyncio.to_thread(apply_async)``;
* ormevents ``save()`` published through Celery (Redis broker);
* ormevents ``save()`` with the in-memory ``RecordingPublisher`` — ormevents' own work
  (snapshot diff, event) without the broker, for the profile of where time goes.

Target: ormevents' median <= 1.0x the hand-rolled way and <= 1.3x raw ``update_one``.
"""

from __future__ import annotations

from benchmarks import raw_celery
from benchmarks.harness.context import IDLE_QUEUE, Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import interleave
from benchmarks.harness.writes import HandRolled
from benchmarks.models import STATUSES, Account
from ormevents import RecordingPublisher, get_runtime

NUMBER = 1
TITLE = "save() of a 2-field update vs hand-rolled update_one + apply_async"


def two_fields(i: int) -> dict[str, object]:
    """The fields the i-th write sets: both always change."""
    return {"balance": i, "status": STATUSES[i % 2]}


async def run(bench: Bench) -> ScenarioResult:
    """Measure the five variants (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    hand = await HandRolled(bench.db.raw_accounts).insert({"email": "a@x", "balance": -1, "status": STATUSES[1]})
    async with bench.ormevents(IDLE_QUEUE):
        runtime = get_runtime()
        celery_publisher, recording = runtime.publisher, RecordingPublisher(limit=10)
        published = await Account.create(email="a@x")
        recorded = await Account.create(email="b@x")

        async def raw_update(i: int) -> None:
            await hand.update(two_fields(i))

        async def hand_rolled(i: int) -> None:
            await hand.write(two_fields(i))

        async def hand_rolled_thread(i: int) -> None:
            await hand.write_threaded(two_fields(i))

        async def orm_save(i: int) -> None:
            for name, value in two_fields(i).items():
                setattr(published, name, value)
            await published.save()

        async def orm_recorded(i: int) -> None:
            for name, value in two_fields(i).items():
                setattr(recorded, name, value)
            runtime.publisher = recording  # the runtime's documented state: swap where events go
            try:
                await recorded.save()
            finally:
                runtime.publisher = celery_publisher

        series = await interleave({
            "raw update_one": raw_update, "hand-rolled update_one + apply_async": hand_rolled,
            "hand-rolled + to_thread(apply_async)": hand_rolled_thread, "ormevents save()": orm_save,
            "ormevents save(), no broker (recorded)": orm_recorded,
        }, bench.sizes.write_ops, bench.sizes.rounds)
    for name, role in (("raw update_one", "baseline"), ("hand-rolled update_one + apply_async", "baseline"),
                       ("hand-rolled + to_thread(apply_async)", "baseline"), ("ormevents save()", "ormevents"),
                       ("ormevents save(), no broker (recorded)", "info")):
        result.add(series[name], role)
    hand_ratio = result.compare("save() / hand-rolled", "ormevents save()", "hand-rolled update_one + apply_async")
    raw_ratio = result.compare("save() / raw update_one", "ormevents save()", "raw update_one")
    result.compare("save() / hand-rolled with to_thread", "ormevents save()", "hand-rolled + to_thread(apply_async)")
    result.target_ratio("1: save() median <= 1.0x hand-rolled update_one + apply_async", hand_ratio, 1.0)
    result.target_ratio("1: save() median <= 1.3x raw update_one", raw_ratio, 1.3)
    bench.drop_queue(IDLE_QUEUE)
    bench.drop_queue(raw_celery.IDLE_QUEUE)
    return result
