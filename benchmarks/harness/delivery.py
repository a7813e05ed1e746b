"""End-to-end throughput: publish a batch, wait until the workers counted every run.

A :class:`Batch` publishes ``size`` items (events, tasks or documents) for a run id; each item
makes ``runs`` handler runs or tasks, all counted by :func:`benchmarks.tasks_common.count`.
:func:`compare_batches` times the batches of several variants in alternating rounds: from the
first publish to the last counted run, and the publishing phase alone (the workers are
running meanwhile, as in production).

Example::

    batches = {"raw Celery": tasks(1000), "ormevents": events(1000, fanout=1)}
    rates = await compare_batches(bench, batches, rounds=2)   # {name: (total, publish) Series}
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from benchmarks import raw_celery
from ormevents import Event, event_bus

from .context import Bench
from .stats import Series


@dataclass(frozen=True)
class Batch:
    """``publish(run, size)`` sends ``size`` items, each making ``runs`` counted runs.

    ``prepare(run, size)``, if given, runs first, untimed (e.g. the documents an update changes).
    """

    publish: Callable[[str, int], Awaitable[None]]
    size: int
    runs: int = 1
    unit: str = "events/s"
    prepare: Callable[[str, int], Awaitable[None]] | None = None


def events(size: int, fanout: int = 1, unit: str = "events/s") -> Batch:
    """``size`` ormevents events named ``bench.fan<fanout>`` (``fanout`` handlers each), one by one."""

    async def publish(run: str, count: int) -> None:
        for i in range(count):
            await event_bus.publish(Event(name=f"bench.fan{fanout}", data={"run": run, "i": i}))

    return Batch(publish, size, fanout, unit)


def events_many(size: int, fanout: int = 1, chunk: int = 100, unit: str = "events/s") -> Batch:
    """The same events handed over ``chunk`` at a time with ``event_bus.publish_many`` (they travel
    as ``ormevents.dispatch_batch`` messages of up to 32 events, see ``docs/delivery.md``)."""

    async def publish(run: str, count: int) -> None:
        for start in range(0, count, chunk):
            await event_bus.publish_many([Event(name=f"bench.fan{fanout}", data={"run": run, "i": i})
                                          for i in range(start, min(start + chunk, count))])

    return Batch(publish, size, fanout, unit)


def tasks(size: int, per_item: int = 1, unit: str = "events/s") -> Batch:
    """``size`` items of ``per_item`` raw Celery ``apply_async`` calls each (the hand-rolled fan-out)."""

    async def publish(run: str, count: int) -> None:
        for i in range(count):
            for k in range(per_item):
                raw_celery.noop.apply_async(args=[run, {"i": i, "k": k}], queue=raw_celery.QUEUE)

    return Batch(publish, size, per_item, unit)


async def run_batch(bench: Bench, batch: Batch, label: str) -> tuple[float, float]:
    """Publish one batch and wait for it to drain; ``(total seconds, publishing seconds)``."""
    run = bench.run_id(label.replace(" ", "_"))
    if batch.prepare is not None:
        await batch.prepare(run, batch.size)
    began = time.perf_counter()
    await batch.publish(run, batch.size)
    published = time.perf_counter()
    done = await bench.wait_count(run, batch.size * batch.runs)
    return done - began, published - began


async def compare_batches(bench: Bench, batches: dict[str, Batch], rounds: int) -> dict[str, tuple[Series, Series]]:
    """Per variant, the end-to-end rate and the publishing rate of each round (items per second).

    ``unit`` ``runs/s`` counts handler runs (items x runs) instead of items.
    """
    out = {name: (Series(name, b.unit), Series(name + ", publish phase", b.unit)) for name, b in batches.items()}
    for r in range(rounds):
        order = list(batches) if r % 2 == 0 else list(reversed(batches))
        for name in order:
            batch = batches[name]
            total, publishing = await run_batch(bench, batch, name)
            units = batch.size * (batch.runs if batch.unit == "runs/s" else 1)
            out[name][0].add_round([units / total])
            out[name][1].add_round([units / publishing])
    return out
