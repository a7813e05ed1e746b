"""The outbox relay (issue 12): what a writer could not hand over is published once, from one
cursor per collection, under a lease; intents of deletes that did not happen are dropped; sent
records are cleaned up into the history. Real SecantusDB and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio

import ormevents
from ormevents import EventModel
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.publisher import CeleryPublisher
from ormevents.delivery.outbox.records import EVENTS_COLLECTION, build_pending
from ormevents.delivery.outbox.relay import Relay
from ormevents.events.event import Event
from ormevents.jobs.keys import Keys
from tests.support.servers import free_port
from tests.support.broker_queue import queued_events

pytestmark = pytest.mark.integration


class Parcel(EventModel):
    _collection = "parcels"
    code: str
    state: str = "new"


queued = queued_events


@pytest.fixture
def queue() -> str:
    return f"relay{uuid.uuid4().hex[:8]}:events"


@pytest.fixture
async def relay_parts(database: Any, redis_uri: str, queue: str) -> AsyncIterator[tuple[CeleryPublisher, Any]]:
    publisher = CeleryPublisher(DeliverySettings(redis_url=redis_uri, queue_name=queue))
    publisher.outbox.bind(lambda: database, publisher.outbox.config)
    client = redis.asyncio.Redis.from_url(redis_uri)
    yield publisher, client
    await publisher.close()
    await client.aclose()


async def write_while_the_broker_is_down(database: Any, queue: str) -> list[str]:
    """Writes whose hand-off fails (the writer's broker is down): their events stay pending."""
    await ormevents.init(database=database, redis_uri=f"redis://127.0.0.1:{free_port()}/0",
                         event_config={"queue_name": queue, "publish_retry": {"max_retries": 0, "timeout": 0.3},
                                       "redis_check": "skip"})
    ids: list[str] = []
    try:
        from ormevents.testing import capture_events

        with capture_events() as captured:
            parcels = [await Parcel.create(code=f"P{i}") for i in range(30)]
            for parcel in parcels[:10]:
                await parcel.update(state="sent")
            for parcel in parcels[10:15]:
                await parcel.delete()
            for parcel in parcels[15:18]:
                await parcel.emit("scanned", data={"code": parcel.code})
        ids = [str(e.id) for e in captured.events]
    finally:
        await ormevents.close()
    return ids


async def test_the_relay_publishes_each_pending_event_once_and_cleans_up(
        database: Any, redis_uri: str, queue: str, relay_parts: tuple[CeleryPublisher, Any]) -> None:
    written = await write_while_the_broker_is_down(database, queue)
    assert len(written) == 48, f"expected 30 created + 10 updated + 5 deleted + 3 custom events, captured {len(written)}"
    publisher, client = relay_parts
    relay = Relay(database, publisher, client, Keys(queue), grace=0.0)
    first = await relay.run_once()
    second = await relay.run_once()
    rdb = redis.Redis.from_url(redis_uri)
    counts = Counter(event["id"] for event in queued(rdb, queue))
    lost = set(written) - set(counts)
    duplicated = {i: n for i, n in counts.items() if n > 1}
    print(f"relay: first pass {first}, second pass {second}; lost={len(lost)} duplicated={len(duplicated)}")
    assert first == 48 and second == 0, f"first pass published {first} (expected 48), second {second} (expected 0)"
    assert not lost and not duplicated, f"lost={len(lost)} duplicated={len(duplicated)}"
    assert set(counts) == set(written), "the relay published events nobody wrote"
    left = await database["parcels"].count_documents({"_oe_pending_at": {"$exists": True}})
    history = await database[EVENTS_COLLECTION].count_documents({"sent_at": {"$exists": True}}) + sum(
        len(bucket["i"]) for bucket in await database["_oe_history"].find({}).to_list(None))  # rows + buckets
    pending_rows = await database[EVENTS_COLLECTION].count_documents({"pending_at": {"$exists": True}})
    assert left == 0 and pending_rows == 0, f"{left} documents and {pending_rows} rows still pending after the clean-up"
    assert history == 48, f"{history} events in the history for 48 sent events"
    assert rdb.zcard(Keys(queue).outbox_sent) == 48


async def test_an_intent_row_is_published_only_if_its_document_is_gone(
        database: Any, redis_uri: str, queue: str, relay_parts: tuple[CeleryPublisher, Any]) -> None:
    kept = {"_id": "kept", "code": "K"}
    await database["parcels"].insert_one(kept)
    await database["parcels"].create_index([("_oe_pending_at", 1)], name="oe_pending", sparse=True)
    await database[EVENTS_COLLECTION].create_index([("pending_at", 1)], name="oe_pending", sparse=True)
    intents = {}
    for object_id in ("kept", "gone"):  # a writer killed between its intent row and its delete
        pending = build_pending(Event(name="parcel.deleted", object_id=object_id), home=EVENTS_COLLECTION)
        intents[object_id] = pending.id
        await database[EVENTS_COLLECTION].insert_one(pending.row("parcels", object_id, intent=True))
    publisher, client = relay_parts
    published = await Relay(database, publisher, client, Keys(queue), grace=0.0).run_once()
    sent = [event["id"] for event in queued(redis.Redis.from_url(redis_uri), queue)]
    assert published == 1 and sent == [intents["gone"]], f"published {published}: {sent}"
    assert await database[EVENTS_COLLECTION].find_one({"_id": intents["kept"]}) is None, \
        "the intent of a delete that did not happen should be dropped"


async def test_events_already_handed_over_are_not_published_again(
        database: Any, redis_uri: str, queue: str, relay_parts: tuple[CeleryPublisher, Any]) -> None:
    publisher, client = relay_parts
    await database["parcels"].create_index([("_oe_pending_at", 1)], name="oe_pending", sparse=True)
    records = []
    for i in range(20):
        record = build_pending(Event(name="parcel.created", object_id=i, data={"code": f"Q{i}"}), home="parcels", key=i)
        await database["parcels"].insert_one({"_id": i, "code": f"Q{i}", "_oe_outbox": {record.id: record.entry()},
                                              "_oe_pending_at": record.at})
        records.append(record)
    handed = await publisher.publish_many(records)  # the writer's hand-off; it died before its clean-up
    published = await Relay(database, publisher, client, Keys(queue), grace=0.0).run_once()
    counts = Counter(event["id"] for event in queued(redis.Redis.from_url(redis_uri), queue))
    print(f"the writer handed over {handed}; the relay published {published} of the 20 still pending")
    assert handed == 20 and published == 0, f"handed {handed}, relay published {published} (expected 20, 0)"
    assert len(counts) == 20 and max(counts.values()) == 1, counts
    left = await database["parcels"].count_documents({"_oe_pending_at": {"$exists": True}})
    assert left == 0, f"{left} documents still pending: the relay should clean up what was already sent"


async def test_one_relay_at_a_time_works_a_collection(
        database: Any, redis_uri: str, queue: str, relay_parts: tuple[CeleryPublisher, Any]) -> None:
    written = await write_while_the_broker_is_down(database, queue)
    publisher, client = relay_parts
    first, second = (Relay(database, publisher, client, Keys(queue), grace=0.0) for _ in range(2))
    results = await asyncio.gather(first.run_once(), second.run_once())
    counts = Counter(event["id"] for event in queued(redis.Redis.from_url(redis_uri), queue))
    print(f"two relays at once published {results}; {len(counts)} distinct events, "
          f"duplicated={sum(1 for n in counts.values() if n > 1)}")
    assert sum(results) == len(written) and set(counts) == set(written) and max(counts.values()) == 1
    holders = {name: client_value for name in ("parcels", EVENTS_COLLECTION)
               if (client_value := await client.get(Keys(queue).relay_lease(name)))}
    assert len(holders) == 2 and len({value for value in holders.values()}) >= 1
    fence = int(await client.get(Keys(queue).relay_fence("parcels")))
    await first.close()
    await second.close()
    third = Relay(database, publisher, client, Keys(queue), grace=0.0)
    await third.run_once()
    assert int(await client.get(Keys(queue).relay_fence("parcels"))) == fence + 1, "a new holder gets the next fence"
    await third.close()


async def test_a_row_marked_sent_twice_keeps_its_first_sent_time(database: Any) -> None:
    """The clean-up marks an _oe_events row by its _id alone (an index lookup on SecantusDB too),
    idempotently: a second mark (the event was published again) keeps the first sent time."""
    import asyncio

    from ormevents.delivery.outbox.cleanup import Cleaner

    record = build_pending(Event(name="parcel.scanned"), home=EVENTS_COLLECTION)
    await database[EVENTS_COLLECTION].insert_one(record.row("parcels", "P1"))
    cleaner = Cleaner(lambda: database, 3600.0)
    cleaner.add([record])
    await cleaner.run()
    first = await database[EVENTS_COLLECTION].find_one({"_id": record.id})
    assert "pending_at" not in first and first["sent_at"] and first["expire_at"], first
    await asyncio.sleep(0.01)
    cleaner.add([record])
    await cleaner.run()
    second = await database[EVENTS_COLLECTION].find_one({"_id": record.id})
    assert (second["sent_at"], second["expire_at"]) == (first["sent_at"], first["expire_at"]), (first, second)
