"""The shop's orders in eager mode: validation, the status lifecycle and its events, the order
count, the audit log, the delayed payment reminder (simulated clock), the flaky payment
gateway (retries in simulated time) and the carrier API that fails until it is fixed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from bson import Decimal128

from example_app.demo import EXPECTED
from example_app.models import REMINDER_DELAY_SECONDS, InvalidTransition, Order, User
from example_app.settings import CARRIER_FIXED
from ormevents import JobNotFoundError, event_bus
from ormevents.testing import CapturedEvents
from tests.example_app.conftest import Shop


@pytest.fixture
async def ann(shop: Shop) -> User:
    return await User.create(username="ann", email="ann@example.com")


@pytest.fixture
async def carrier_down(shop: Shop) -> AsyncIterator[None]:
    """The carrier API starts broken (its flag is absent) and the flag never outlives the test."""
    await shop.redis.delete(CARRIER_FIXED)
    try:
        yield
    finally:
        await shop.redis.delete(CARRIER_FIXED)


@pytest.mark.parametrize("total", [Decimal(0), Decimal("-9.90")])
async def test_an_order_total_must_be_positive(
    shop: Shop, ann: User, captured_events: CapturedEvents, total: Decimal
) -> None:
    with pytest.raises(ValueError, match="^an order total must be positive$"):
        await Order.create(user_id=ann.id, total=total)

    assert await shop.database.orders.count_documents({}) == 0
    assert captured_events.names() == [] and shop.publisher.pending == []


async def test_lowering_a_total_to_zero_is_rejected_and_nothing_changes(
    shop: Shop, ann: User, captured_events: CapturedEvents
) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    with pytest.raises(ValueError, match="must be positive"):
        await order.update(total=Decimal(0))

    assert (await shop.database.orders.find_one({"_id": order.id}))["total"] == Decimal128("25.00")
    assert captured_events.names() == ["order.created", "order.payment_reminder"]


async def test_created_paid_shipped_each_emit_the_update_and_the_step(
    shop: Shop, ann: User, captured_events: CapturedEvents, carrier_down: None
) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    created, reminder = captured_events.published
    assert created.event.name == "order.created" and created.delay is None
    assert created.event.changes == {"user_id": (None, ann.id), "total": (None, Decimal("25.00")),
                                     "status": (None, "created")}
    assert (reminder.event.name, reminder.event.object_id, reminder.delay) == (
        "order.payment_reminder", order.id, REMINDER_DELAY_SECONDS)

    await order.update(status="paid")
    await order.update(status="shipped")

    assert captured_events.names()[2:] == ["order.updated", "order.paid", "order.updated", "order.shipped"]
    updated = captured_events.named("order.updated")
    assert [event.changes for event in updated] == [{"status": ("created", "paid")}, {"status": ("paid", "shipped")}]
    for step in ("paid", "shipped"):
        [event] = captured_events.named(f"order.{step}")
        assert event.object_id == order.id and event.changes == {} and event.data["status"] == step
    assert (await shop.database.orders.find_one({"_id": order.id}))["status"] == "shipped"


@pytest.mark.parametrize("path", [[], ["paid"]], ids=["unpaid", "paid"])
async def test_an_order_can_be_cancelled_before_it_ships(
    shop: Shop, ann: User, captured_events: CapturedEvents, path: list[str]
) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("9.90"))
    for status in path:
        await order.update(status=status)
    await order.update(status="cancelled")

    previous = path[-1] if path else "created"
    assert captured_events.names()[-2:] == ["order.updated", "order.cancelled"]
    assert captured_events.named("order.updated")[-1].changes == {"status": (previous, "cancelled")}
    [cancelled] = captured_events.named("order.cancelled")
    assert cancelled.object_id == order.id and cancelled.data["status"] == "cancelled"
    with pytest.raises(InvalidTransition, match="^order cannot go from 'cancelled' to 'paid'$"):
        await order.update(status="paid")
    assert (await shop.database.orders.find_one({"_id": order.id}))["status"] == "cancelled"


@pytest.mark.parametrize(("path", "forbidden"), [
    ([], "shipped"),                        # unpaid orders do not ship
    (["paid", "shipped"], "cancelled"),     # too late to cancel
    (["paid"], "created"),                  # no way back
])
async def test_forbidden_order_transitions_are_rejected(
    shop: Shop, ann: User, captured_events: CapturedEvents, carrier_down: None, path: list[str], forbidden: str
) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("9.90"))
    for status in path:
        await order.update(status=status)
    before = captured_events.names()

    with pytest.raises(InvalidTransition, match=f"^order cannot go from '{order.status}' to '{forbidden}'$"):
        await order.update(status=forbidden)

    assert captured_events.names() == before
    stored = await shop.database.orders.find_one({"_id": order.id})
    assert stored["status"] == (path[-1] if path else "created")


async def test_each_user_has_an_order_count(shop: Shop, ann: User) -> None:
    bob = await User.create(username="bob", email="bob@example.com")
    first = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    bobs = await Order.create(user_id=bob.id, total=Decimal("1.00"))
    second = await Order.create(user_id=ann.id, total=Decimal("9.90"))

    assert shop.publisher.results_for("order.created", "shop.count_orders") == [1, 1, 2]
    counts = {doc["_id"]: doc["orders"] async for doc in shop.database.order_counts.find({})}
    assert counts == {ann.id: [first.id, second.id], bob.id: [bobs.id]}
    assert [detail for *_, detail in await shop.timeline("shop.count_orders")] == [
        "user has 1 order(s)", "user has 1 order(s)", "user has 2 order(s)",
    ]


async def test_audit_log_keeps_order_events_with_their_diffs(shop: Shop, ann: User, carrier_down: None) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    await order.update(status="paid")

    runs = [run for run in shop.runs("shop.audit") if run.event.model == "order"]
    assert [(run.event.name, run.succeeded, run.attempts) for run in runs] == [
        ("order.created", True, 1), ("order.updated", True, 1), ("order.paid", True, 1),
    ]
    entries = {entry["_id"]: entry async for entry in shop.database.audit_log.find({"object_id": order.id})}
    assert [entries[str(run.event.id)]["changes"] for run in runs] == [
        {"user_id": [None, ann.id], "total": [None, Decimal128("25.00")], "status": [None, "created"]},
        {"status": ["created", "paid"]},
        {},
    ]


async def test_payment_reminder_fires_only_once_its_delay_has_passed(shop: Shop, ann: User) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("9.90"))
    assert [(e.name, e.object_id) for e in shop.publisher.pending] == [("order.payment_reminder", order.id)]

    assert await shop.publisher.advance(REMINDER_DELAY_SECONDS - 0.25) == []
    assert shop.runs("shop.payment_reminder") == [] and len(shop.publisher.pending) == 1

    [delivered] = await shop.publisher.advance(0.25)
    assert delivered.name == "order.payment_reminder" and shop.publisher.pending == []
    [run] = shop.runs("shop.payment_reminder")
    assert run.succeeded and run.event is delivered
    assert await shop.timeline("shop.payment_reminder") == [
        ("order.payment_reminder", 1, "ok", "reminder email sent"),
    ]
    assert await shop.publisher.advance(3600) == []


@pytest.mark.parametrize(("step", "detail"), [
    ("paid", "no reminder: order is paid"),
    ("cancelled", "no reminder: order is cancelled"),
])
async def test_no_payment_reminder_for_an_order_no_longer_waiting_for_payment(
    shop: Shop, ann: User, step: str, detail: str
) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    await order.update(status=step)

    assert shop.runs("shop.payment_reminder") == []
    await shop.publisher.advance(REMINDER_DELAY_SECONDS)
    assert await shop.timeline("shop.payment_reminder") == [("order.payment_reminder", 1, "ok", detail)]


async def test_the_flaky_payment_gateway_succeeds_on_the_third_attempt_in_simulated_time(
    shop: Shop, ann: User
) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    assert shop.publisher.clock.now == 0.0

    await order.update(status="paid")

    [run] = shop.runs("shop.charge_card")
    assert (run.event.name, run.succeeded, run.attempts, run.result) == ("order.paid", True, 3, "charged")
    assert run.retry_delays == (0.3, 0.6)                       # interval_start, then + interval_step
    assert shop.publisher.clock.now == pytest.approx(0.9)      # simulated: the test did not wait
    assert shop.publisher.results_for("order.paid", "shop.charge_card") == ["charged"]
    assert shop.publisher.failed_jobs == []
    assert await shop.timeline("shop.charge_card") == [
        ("order.paid", 1, "error", "payment gateway timed out"),
        ("order.paid", 2, "error", "payment gateway timed out"),
        ("order.paid", 3, "ok", "charged 25.00"),
    ]


async def test_the_carrier_failure_lands_in_failed_jobs_and_a_retry_succeeds_once_fixed(
    shop: Shop, ann: User, carrier_down: None
) -> None:
    order = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    await order.update(status="paid")

    await order.update(status="shipped")        # the write stands although its handler failed

    assert (await shop.database.orders.find_one({"_id": order.id}))["status"] == "shipped"
    [job] = shop.publisher.failed_jobs
    assert (job.handler, job.event.name, job.event.object_id) == ("shop.notify_carrier", "order.shipped", order.id)
    assert job.attempts == 2 and job.retry_delays == (0.3,)     # max_retries=1
    assert isinstance(job.error, RuntimeError)
    assert str(job.error) == "carrier API rejected the shipment (attempt 2)"
    assert [(run.handler, run.succeeded) for run in shop.publisher.runs if run.event is job.event] == [
        ("shop.audit", True), ("shop.notify_carrier", False),
    ]

    page = await event_bus.get_failed_jobs(handler="shop.notify_carrier")   # the app's own API, in eager mode
    [record] = page.items
    assert record.id == f"{job.event.id}:shop.notify_carrier" and record.attempts == 2
    assert record.error_type == "builtins.RuntimeError" and "rejected the shipment" in record.traceback
    await shop.redis.set(CARRIER_FIXED, 1)
    await event_bus.retry_job(record.id)

    assert await event_bus.count_failed() == 0 and shop.publisher.failed_jobs == []
    assert shop.runs("shop.notify_carrier")[-1].result == "accepted"
    with pytest.raises(JobNotFoundError):
        await event_bus.retry_job(record.id)

    assert await shop.timeline("shop.notify_carrier") == [
        ("order.shipped", 1, "error", "carrier API rejected the shipment"),
        ("order.shipped", 2, "error", "carrier API rejected the shipment"),
        ("order.shipped", 3, "ok", "carrier accepted the shipment"),
    ]


async def test_the_demo_scenario_handles_every_expected_event_in_eager_mode(shop: Shop, carrier_down: None) -> None:
    """The same (event, handler) pairs ``make demo`` waits for from a real worker."""
    ann = await User.create(username=" ann ", email="Ann@Example.COM", password_hash="s3cret")
    await ann.update(email="ann@new.example")
    await ann.update(status="active")
    paid = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    await Order.create(user_id=ann.id, total=Decimal("9.90"))
    await paid.update(status="paid")
    await paid.update(status="shipped")
    await shop.publisher.advance(REMINDER_DELAY_SECONDS)

    succeeded = {(run.event.name, run.handler) for run in shop.publisher.runs if run.succeeded}
    assert [pair for pair in EXPECTED if pair not in succeeded] == []
    assert [(run.event.name, run.handler) for run in shop.publisher.failed_jobs] == [
        ("order.shipped", "shop.notify_carrier"),
    ]
    assert sorted(detail for *_, detail in await shop.timeline("shop.payment_reminder")) == [
        "no reminder: order is shipped", "reminder email sent",
    ]
