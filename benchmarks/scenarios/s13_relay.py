"""Scenario 13: the outbox relay draining a backlog (issue 12), events/s.

A backlog of pending records is written straight into MongoDB (as writers leave them when the
broker is down: one record in each model document's ``_oe_outbox``, and as many rows in
``_oe_events``); the relay then drains it with one cursor per collection, batches of 1,000,
``publish_many`` to the Redis broker (a queue no worker consumes) and its sent marks, timed
from the start of the pass to the last push. The MongoDB clean-up that trails the relay is
timed separately (documents/s): it is not on the relay's critical path.

Target (issue 12): relay throughput >= 20,000 events/s draining a backlog.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness.context import IDLE_QUEUE, Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import Series
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.publisher import CeleryPublisher
from ormevents.delivery.outbox.records import EVENTS_COLLECTION, build_pending, companions, indexes
from ormevents.delivery.outbox.relay import Relay
from ormevents.events.event import Event
from ormevents.jobs.keys import Keys

NUMBER = 13
FRESH_MONGO = True  # fills collections: on a fresh SecantusDB (Bench.fresh_mongo)
TITLE = "outbox relay: draining a backlog of pending events"
DATA = {"email": "someone@example.com", "status": "active", "balance": 1234, "note": "x" * 600}


async def fill(bench: Bench, collection: str, count: int) -> None:
    """``count`` pending records in ``collection`` (one per document, or ``_oe_events`` rows)."""
    db = bench.db
    await db[collection].drop()
    for name in (collection, *companions(collection)):  # as init() does for a model's collection
        for keys, options in indexes(name):
            await db[name].create_index(keys, **options)
    for start in range(0, count, 1000):
        batch = []
        for i in range(start, min(count, start + 1000)):
            event = Event(name="bench_account.updated", object_id=i, data={**DATA, "id": i},
                          changes={"status": ("idle", "active")})
            if collection == EVENTS_COLLECTION:
                batch.append(build_pending(event, home=EVENTS_COLLECTION).row("bench_relay", i))
            else:
                record = build_pending(event, home=collection, key=i)
                batch.append({"_id": i, **DATA, "_oe_outbox": {record.id: record.entry()}, "_oe_pending_at": record.at})
        await db[collection].insert_many(batch, ordered=False)


async def drain(bench: Bench, publisher: Any, redis_client: Any, collection: str) -> tuple[float, float, int]:
    """One relay pass over ``collection``: (events/s published, documents/s cleaned, published)."""
    relay = Relay(bench.db, publisher, redis_client, Keys(IDLE_QUEUE), grace=0.0)
    relay._known = (time.monotonic(), [collection])  # this collection only
    began = time.perf_counter()
    published = await relay.relay(collection)
    publishing = time.perf_counter() - began
    began = time.perf_counter()
    cleaned = await relay.cleaner.run()
    cleaning = time.perf_counter() - began
    await relay.close()
    return published / publishing, cleaned / cleaning if cleaning else float("nan"), published


async def run(bench: Bench) -> ScenarioResult:
    """Fill and drain each kind of backlog, ``throughput_rounds`` times (see module doc)."""
    import redis.asyncio

    result = ScenarioResult(NUMBER, TITLE)
    count = bench.sizes.relay_backlog
    settings = DeliverySettings(redis_url=bench.redis_uri, queue_name=IDLE_QUEUE)
    publisher = CeleryPublisher(settings)
    publisher.outbox.bind(lambda: bench.db, publisher.outbox.config)
    client = redis.asyncio.Redis.from_url(bench.redis_uri)
    series: dict[str, Series] = {}
    try:
        for _ in range(bench.sizes.throughput_rounds):
            for collection, label in (("bench_relay", "model documents (_oe_outbox)"),
                                      (EVENTS_COLLECTION, "_oe_events rows")):
                await fill(bench, collection, count)
                await client.delete(Keys(IDLE_QUEUE).outbox_sent)
                rate, cleaned, published = await drain(bench, publisher, client, collection)
                assert published == count, f"the relay published {published} of {count}"
                series.setdefault(label, Series(f"relay, {label}", "events/s")).add_round([rate])
                series.setdefault(f"clean {label}", Series(f"trailing clean-up, {label}", "docs/s")).add_round([cleaned])
                bench.drop_queue(IDLE_QUEUE)
    finally:
        await publisher.close()
        await client.aclose()
        await bench.db["bench_relay"].drop()
        await bench.db[EVENTS_COLLECTION].drop()
    for name, values in series.items():
        result.add(values, "info" if name.startswith("clean") else "ormevents", p99=False)
    best = max(series["model documents (_oe_outbox)"].median, series["_oe_events rows"].median)
    result.target("13: relay >= 20,000 events/s draining a backlog", series["model documents (_oe_outbox)"].median,
                  20_000, unit="events/s", higher_is_better=True)
    result.notes.append(f"backlog of {count:,} events per kind and round, {bench.sizes.throughput_rounds} rounds; "
                        f"best kind {best:,.0f} events/s; the clean-up trails the relay (not on its critical path)")
    return result
