"""The scripted scenario of ``make demo``: writes, their diffs, and every handler run as it happens."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from decimal import Decimal
from typing import Any

import ormevents
from ormevents import event_metadata
from ormevents.testing.servers import stop

from .models import Order, User
from .settings import CARRIER_FIXED, Settings
from .timeline import Timeline

EXPECTED: list[tuple[str, str]] = [
    ("user.created", "shop.send_welcome"),
    ("user.created", "shop.invalidate_user_cache"),
    ("user.created", "shop.audit"),
    ("user.updated", "shop.confirm_email_change"),
    ("order.created", "shop.count_orders"),
    ("order.created", "shop.audit"),
    ("order.payment_reminder", "shop.payment_reminder"),
    ("order.paid", "shop.charge_card"),
    ("order.shipped", "shop.audit"),
]


def start_worker(settings: Settings, log_path: str) -> subprocess.Popen[bytes]:
    """A real ``celery -A ormevents.worker worker`` (prefork, 2 processes) for the shop's handlers."""
    env = {**os.environ, **settings.environ()}
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed with it
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ormevents.worker", "worker", "--pool=prefork",
         "--concurrency=2", "-Q", settings.queue, "--without-gossip", "--without-mingle",
         "--without-heartbeat", "--loglevel=WARNING"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )


async def scenario(timeline: Timeline) -> None:
    """The writes, each inside ``event_metadata(write=n)``: its events (and those its hooks emit,
    delayed ones too) carry ``n``, so every handler run is shown under the write that caused it."""
    with event_metadata(write=1):
        ann = await User.create(username=" ann ", email="Ann@Example.COM", password_hash="s3cret")
    timeline.write(1, "User.create(ann) -> user.created (email normalised by a before_write hook)", ann)
    await timeline.follow(2.0)
    try:
        await User.create(username="bob", email="not-an-email")
    except ValueError as error:
        print(f"\n● User.create(bob) rejected by a before_write hook: {error} (nothing written, no event)")
    with event_metadata(write=2):
        await ann.update(email="ann@new.example")
    timeline.write(2, "ann.update(email=...) -> user.updated", ann)
    with event_metadata(write=3):
        await ann.update(status="active")
    timeline.write(3, "ann.update(status='active') -> user.updated", ann)
    await timeline.follow(1.5)
    with event_metadata(write=4):
        paid = await Order.create(user_id=ann.id, total=Decimal("25.00"))
    timeline.write(4, "Order.create(25.00) -> order.created (+ order.payment_reminder in 3 s)", paid)
    with event_metadata(write=5):
        unpaid = await Order.create(user_id=ann.id, total=Decimal("9.90"))
    timeline.write(5, "Order.create(9.90) -> order.created (+ order.payment_reminder in 3 s)", unpaid)
    await timeline.follow(1.0)
    with event_metadata(write=6):
        await paid.update(status="paid")
    timeline.write(6, "order.update(status='paid') -> order.updated + order.paid (after_update hook); "
                      "the gateway is flaky", paid)
    await timeline.follow(2.5)
    with event_metadata(write=7):
        await paid.update(status="shipped")
    timeline.write(7, "order.update(status='shipped') -> order.updated + order.shipped; the carrier API is down",
                   paid)
    print("\n… waiting for the delayed payment reminders", flush=True)
    await timeline.wait_for(EXPECTED, timeout=30.0)


async def run(settings: Settings, *, start_own_worker: bool) -> int:
    with ExitStack() as stack:
        worker = None
        if start_own_worker:
            log = tempfile.NamedTemporaryFile(prefix="shop-worker-", suffix=".log", delete=False).name
            worker = start_worker(settings, log)
            stack.callback(stop, worker)
            print(f"worker: celery -A ormevents.worker worker (log: {log})", flush=True)
        await ormevents.init(mongo_uri=settings.mongo_uri, database=settings.database,
                             redis_uri=settings.redis_uri, event_config={"queue_name": settings.queue})
        try:
            runtime = ormevents.get_runtime()
            await runtime.database.client.drop_database(settings.database)
            await _carrier_fixed(settings, False)  # the carrier starts broken
            timeline = Timeline(runtime.database)
            started = time.monotonic()
            await scenario(timeline)
            missing = timeline.missing(EXPECTED)
            failed = await _show_failed_jobs()
            retried = False
            if failed:
                await _carrier_fixed(settings, True)
                retried = await _retry_failed_job(failed, timeline)
            timeline.print_by_write()
            print(f"\nfinished in {time.monotonic() - started:.1f} s")
            if missing or not failed or not retried:
                print(f"NOT HANDLED: {missing or ('no failed job for shop.notify_carrier' if not failed else 'the retry')}")
                return 1
            print("every expected event was handled")
            return 0
        finally:
            await ormevents.close()


async def _show_failed_jobs() -> str | None:
    """Print the failed jobs of the carrier handler; the id of the first one."""
    deadline = time.monotonic() + 10
    page = await ormevents.event_bus.get_failed_jobs(handler="shop.notify_carrier")
    while not page.items and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        page = await ormevents.event_bus.get_failed_jobs(handler="shop.notify_carrier")
    print("\n● failed jobs (kept in Redis until retried or removed):")
    for job in page.items:
        print(f"    {job.id}  {job.handler}  {job.event_name}  {job.error_type}: {job.error_message}"
              f"  after {job.attempts} attempt(s)")
    return page.items[0].id if page.items else None


async def _carrier_fixed(settings: Settings, fixed: bool) -> None:
    """Set or clear the Redis flag the carrier handler checks."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.redis_uri)
    try:
        await (client.set(CARRIER_FIXED, 1) if fixed else client.delete(CARRIER_FIXED))
    finally:
        await client.aclose()


async def _retry_failed_job(job_id: str, timeline: Timeline) -> bool:
    """Retry the failed job once the carrier is fixed; show it succeed and the store empty."""
    print("\n● the carrier API is fixed; event_bus.retry_job(...)  (or: ormevents failed retry JOB_ID)")
    job = await ormevents.event_bus.retry_job(job_id)
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        await timeline.follow(0.2)
        status = await ormevents.event_bus.get_handler_status(job.event_id, job.handler)
        if status is not None and status.state in ("succeeded", "failed"):
            break
    left = await ormevents.event_bus.count_failed(handler="shop.notify_carrier")
    state = status.state if status else "unknown"
    print(f"    retry of {job.handler}: {state} after {status.attempts if status else 0} attempt(s); "
          f"failed jobs left: {left}")
    return state == "succeeded" and left == 0
