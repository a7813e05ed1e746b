"""Transactions in user code (issue 12): ``ormevents.transaction()`` and ``save(session=...)``.

Events and after-commit work wait for the commit and vanish on abort; several writes to one
document give one event per write with its own diff, and ``after_commit`` sees the cumulative
ChangeSet; transient errors are retried the way ``with_transaction`` does, without duplicate
events. Real SecantusDB (a replica set) through PyMongo and Motor, events read from the broker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

import ormevents
from ormevents import ChangeSet, ConfigurationError, EventModel, RecordingPublisher
from ormevents.hooks import after_commit, after_update
from tests.support.broker_queue import queued_events

pytestmark = pytest.mark.integration

SEEN: list[tuple[str, dict[str, Any]]] = []


class Order(EventModel):
    _collection = "tx_orders"
    number: str
    status: str = "new"
    total: int = 0

    @after_update
    def updated(self) -> None:
        SEEN.append(("after_update", self.saved_changes.as_pairs()))

    @after_commit
    def committed(self) -> None:
        SEEN.append(("after_commit", self.saved_changes.as_pairs()))


class Payment(EventModel):
    _collection = "tx_payments"
    order: str
    amount: int


@pytest.fixture(autouse=True)
def seen() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    SEEN.clear()
    yield SEEN
    SEEN.clear()


@pytest.fixture
async def broker(database: Any, redis_uri: str) -> AsyncIterator[Any]:
    """ormevents on ``database`` with the outbox; yields a function listing the events on the broker."""
    queue = f"tx{uuid.uuid4().hex[:8]}:events"
    await ormevents.init(database=database, redis_uri=redis_uri, event_config={"queue_name": queue})
    client = redis.Redis.from_url(redis_uri)

    async def events() -> list[dict[str, Any]]:
        await ormevents.flush()
        return queued_events(client, queue)

    yield events
    await ormevents.close()
    client.close()


async def test_events_wait_for_the_commit(broker: Any, database: Any) -> None:
    order = await Order.create(number="A1")
    before = len(await broker())
    async with ormevents.transaction() as tx:
        order.status = "paid"
        await order.save()
        await Payment.create(order="A1", amount=10)
        inside = len(await broker()) - before
        outside = await database["tx_payments"].count_documents({})  # no session: the transaction is not visible
        assert tx.session is not None
    after = [e["name"] for e in (await broker())[before:]]
    print(f"events on the broker inside the transaction: {inside}; after the commit: {after}")
    assert inside == 0 and outside == 0, f"{inside} events published and {outside} documents visible before the commit"
    assert after == ["order.updated", "payment.created"], after


async def test_an_aborted_transaction_leaves_no_write_no_event_and_restores_the_instances(
        broker: Any, database: Any, seen: list[Any]) -> None:
    order = await Order.create(number="B1")
    before = len(await broker())
    seen.clear()
    payment = Payment(order="B1", amount=5)
    with pytest.raises(RuntimeError, match="declined"):
        async with ormevents.transaction():
            order.status = "paid"
            await order.save()
            await payment.save()
            raise RuntimeError("card declined")
    events = (await broker())[before:]
    stored = await database["tx_orders"].find_one({"number": "B1"})
    assert events == [] and stored["status"] == "new", (events, stored["status"])
    assert await database["tx_payments"].count_documents({}) == 0
    assert order.changes == {"status": ("new", "paid")}, f"the abort should leave the change pending: {order.changes}"
    assert payment.is_new, "a payment whose insert was aborted is new again"
    assert [name for name, _ in seen] == ["after_update"], seen  # after_update ran in the transaction; no after_commit
    await order.save()  # saved again, outside: it goes through
    assert [e["name"] for e in (await broker())[before:]] == ["order.updated"]


async def test_several_writes_to_one_document_give_one_event_each_and_after_commit_sees_them_all(
        broker: Any, seen: list[Any]) -> None:
    before = len(await broker())
    async with ormevents.transaction():
        order = await Order.create(number="C1")
        await order.update(status="paid")
        await order.update(status="shipped", total=30)
        assert [name for name, _ in seen] == ["after_update", "after_update"], "after_commit must wait for the commit"
    events = (await broker())[before:]
    assert [e["name"] for e in events] == ["order.created", "order.updated", "order.updated"], events
    assert events[1]["changes"] == {"status": ["new", "paid"]}
    assert events[2]["changes"] == {"status": ["paid", "shipped"], "total": [0, 30]}
    commits = [changes for name, changes in seen if name == "after_commit"]
    assert commits == [{"number": (None, "C1"), "status": (None, "shipped"), "total": (None, 30)}], commits


async def test_after_commit_outside_a_transaction_runs_after_each_write(broker: Any, seen: list[Any]) -> None:
    order = await Order.create(number="D1")
    await order.update(status="paid")
    assert seen == [("after_commit", {"number": (None, "D1"), "status": (None, "new"), "total": (None, 0)}),
                    ("after_update", {"status": ("new", "paid")}), ("after_commit", {"status": ("new", "paid")})], seen


async def test_a_user_session_commits_and_aborts_the_events_with_it(broker: Any, database: Any) -> None:
    order = await Order.create(number="E1")
    before = len(await broker())
    client = database.client
    session = await _maybe(client.start_session())
    try:
        await _maybe(session.start_transaction())
        await order.update(status="paid", session=session)
        assert len(await broker()) == before, "published before the user's commit"
        await session.commit_transaction()
        assert [e["name"] for e in (await broker())[before:]] == ["order.updated"]
        await _maybe(session.start_transaction())
        await order.update(status="refunded", session=session)
        await session.abort_transaction()
        assert [e["name"] for e in (await broker())[before:]] == ["order.updated"], "an aborted write was published"
        assert order.changes == {"status": ("paid", "refunded")}
    finally:
        await _maybe(session.end_session())


async def test_write_conflicts_are_retried_without_duplicate_events(broker: Any, database: Any) -> None:
    order = await Order.create(number="F1")
    before = len(await broker())
    attempts = Counter[int]()

    async def add(tx: Any, amount: int) -> None:
        attempts[amount] += 1
        fresh = await Order.get(order.id)
        assert fresh is not None
        await fresh.update(total=fresh.total + amount)
        await asyncio.sleep(0.01)  # let the other transaction write the same document meanwhile

    await asyncio.gather(*(ormevents.transaction().run(lambda tx, a=a: add(tx, a)) for a in (1, 10, 100)))
    events = (await broker())[before:]
    stored = await database["tx_orders"].find_one({"_id": order.id})
    totals = sorted(e["changes"]["total"][1] for e in events)
    retried = sum(n - 1 for n in attempts.values())
    print(f"3 concurrent transactions on one document: {retried} retries; {len(events)} events; total {stored['total']}")
    assert stored["total"] == 111, f"a write was lost: total {stored['total']}"
    assert len(events) == 3 and len({e["id"] for e in events}) == 3, f"{len(events)} events for 3 committed writes"
    assert totals[-1] == 111 and all(e["changes"]["total"][1] - e["changes"]["total"][0] in (1, 10, 100) for e in events)
    assert retried >= 1, "no transaction was retried: the test did not provoke a conflict"


async def test_emit_and_delete_inside_a_transaction_wait_for_the_commit(broker: Any, database: Any) -> None:
    order = await Order.create(number="G1")
    before = len(await broker())
    async with ormevents.transaction():
        await order.emit("reminded", data={"n": 1})
        await order.delete()
        assert len(await broker()) == before
    names = [e["name"] for e in (await broker())[before:]]
    assert names == ["order.reminded", "order.deleted"], names
    assert await database["_oe_events"].count_documents({"intent": True}) == 0, "no intent rows inside a transaction"


async def test_inline_publishers_publish_at_the_commit(database: Any) -> None:
    recorder = RecordingPublisher()
    await ormevents.init(database=database, publisher=recorder)
    try:
        async with ormevents.transaction():
            order = await Order.create(number="H1")
            await order.update(status="paid")
            assert recorder.names() == []
        assert recorder.names() == ["order.created", "order.updated"]
        with pytest.raises(KeyError):
            async with ormevents.transaction():
                await order.update(status="lost")
                raise KeyError("abort")
        assert recorder.names() == ["order.created", "order.updated"]
    finally:
        await ormevents.close()


async def test_transactions_need_a_replica_set(mock_recorder: RecordingPublisher) -> None:
    with pytest.raises(ConfigurationError, match="replica set"):
        async with ormevents.transaction():
            pass
    assert isinstance(ChangeSet(), ChangeSet)


async def _maybe(value: Any) -> Any:
    return await value if hasattr(value, "__await__") else value
