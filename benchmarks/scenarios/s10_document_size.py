"""Scenario 10: a one-field change on documents of 10, 100 and 1,000 fields.

Per size, interleaved: the hand-rolled way (``update_one`` of the field + ``apply_async`` of
just the change) and ormevents ``save()`` (through Celery, to a queue no worker consumes).
The size of one broker message of each is read back from the queue.

Target: ratio to the hand-rolled way <= 1.0x at every size (flat with document size).
"""

from __future__ import annotations

from typing import Any

from benchmarks import raw_celery
from benchmarks.harness.context import IDLE_QUEUE, Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import interleave
from benchmarks.harness.writes import HandRolled
from benchmarks.models import wide_fields, wide_model

NUMBER = 10
TITLE = "one-field change on documents of 10, 100 and 1,000 fields"
SIZES = (10, 100, 1000)


def last_message_bytes(bench: Bench, queue: str) -> int:
    """Size of the newest message in broker queue ``queue`` (kombu pushes on the left)."""
    message = bench.redis.lindex(queue, 0)
    return len(message) if message else 0


async def run(bench: Bench) -> ScenarioResult:
    """Measure both variants at every size (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    async with bench.ormevents(IDLE_QUEUE):
        for size in SIZES:
            model = wide_model(size)
            doc = await model.create()
            hand = await HandRolled(bench.db[f"raw_wide{size}"]).insert(wide_fields(size))

            async def orm_save(i: int, doc: Any = doc) -> None:  # Any: a model generated at run time
                doc.f0 = i + 1
                await doc.save()

            async def hand_rolled(i: int, hand: HandRolled = hand) -> None:
                await hand.write({"f0": i + 1})

            hand_label, orm_label = f"hand-rolled, {size} fields", f"ormevents save(), {size} fields"
            series = await interleave({hand_label: hand_rolled, orm_label: orm_save}, bench.sizes.size_ops,
                                      bench.sizes.rounds)
            result.add(series[hand_label], "baseline")
            result.add(series[orm_label], "ormevents")
            ratio = result.compare(f"{size} fields: save() / hand-rolled", orm_label, hand_label)
            result.target_ratio(f"10: {size} fields: save() <= 1.0x hand-rolled", ratio, 1.0)
            result.value(f"message bytes, hand-rolled, {size} fields", "baseline", "B",
                         last_message_bytes(bench, raw_celery.IDLE_QUEUE))
            result.value(f"message bytes, ormevents, {size} fields", "ormevents", "B",
                         last_message_bytes(bench, IDLE_QUEUE))
            bench.drop_queue(IDLE_QUEUE)
            bench.drop_queue(raw_celery.IDLE_QUEUE)
    ratios = [c.ratio for c in result.comparisons]
    result.notes.append(f"ratio at 1,000 fields / ratio at 10 fields = {ratios[-1] / ratios[0]:.2f} (flat = 1.0)")
    return result
