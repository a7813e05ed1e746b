"""The dashboard in a real browser: Debian's Chromium driven by Playwright opens ``ormevents web``
(a real uvicorn subprocess), filters the failed jobs, opens one, retries it, and the job runs
again on a real ``celery worker``; the event page follows the run live (htmx polling, no reload).

Screenshots of each page are taken on the way; with ``ORMEVENTS_UPDATE_SCREENSHOTS=1`` they are
written to ``docs/img/`` (``make screenshots``), as shown in ``docs/dashboard.md``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
import redis

import ormevents
from ormevents import EventModel, EventModelConfig, Sensitive
from tests.integration.worker_process import ROOT, WorkerProcess, running
from tests.support.browser import ARGS, chromium
from tests.support.servers import free_port, stop, wait_for_port

pytestmark = pytest.mark.integration

DOCS_IMG = ROOT / "docs" / "img"


class ShopOrder(EventModel):
    model_config = EventModelConfig(event_data="document")  # the carrier's handler needs the whole order
    _collection = "dashboard_orders"
    email: str
    total: Decimal
    status: str = "created"
    card_token: Annotated[str, Sensitive()] = ""


@pytest.fixture(scope="module")
def browser_path() -> str:
    path, reason = chromium()
    if path is None:
        pytest.skip(f"no browser for the dashboard test: {reason}")
    return path


@pytest.fixture(scope="module")
def shop_queue() -> str:
    return f"shop{uuid.uuid4().hex[:6]}:events"


@pytest.fixture(scope="module")
def shop_worker(shop_queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    extra = {"ORMEVENTS_IMPORTS": "tests.integration.dashboard_handlers"}
    with running(WorkerProcess(shop_queue, redis_uri, extra_env=extra)) as process:
        yield process


@pytest.fixture(scope="module")
def dashboard_url(shop_queue: str, redis_uri: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", shop_queue, "web",
         "--port", str(port), "--refresh", "1"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)  # type: ignore[arg-type]  # Popen[bytes] either way
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)  # type: ignore[arg-type]


@pytest.fixture
async def shop(shop_worker: WorkerProcess, shop_queue: str, redis_uri: str, mongo_uri: str) -> AsyncIterator[Any]:
    await ormevents.init(mongo_uri=mongo_uri, database=f"dash_{uuid.uuid4().hex[:8]}", redis_uri=redis_uri,
                         event_config={"queue_name": shop_queue})
    yield ormevents.event_bus
    await ormevents.close()


async def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_filter_open_and_retry_a_failed_job_in_a_browser(
        browser_path: str, dashboard_url: str, shop: Any, shop_queue: str, redis_uri: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    rdb = redis.Redis.from_url(redis_uri, decode_responses=True)
    order = await ShopOrder.create(email="ann@example.com", total=Decimal("25.00"), card_token="tok_4242")
    await order.update(status="paid")
    await order.update(status="shipped")
    await order.emit("payment_reminder", delay=3600)
    job_id = None

    def failed() -> bool:
        nonlocal job_id
        found = [j for j in rdb.hkeys(f"{shop_queue}:failed:jobs") if j.endswith(":shop.notify_carrier")]
        job_id = found[0] if found else None
        return job_id is not None

    await _until(failed)
    shots = DOCS_IMG if os.environ.get("ORMEVENTS_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=browser_path, args=ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)

        await page.goto(dashboard_url + "/")
        await page.wait_for_selector("text=shop.notify_carrier")
        assert await page.locator(".tile-failed .n").inner_text() == "1"
        await page.wait_for_selector("td >> text=pid")  # the worker's heartbeat
        await page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)

        await page.click("nav >> text=Failed jobs")
        await page.fill("input[name=handler]", "shop.notify_carrier")
        await page.fill("input[name=since]", "1h")
        await page.click("#apply")
        await page.wait_for_url("**/failed?handler=shop.notify_carrier*")
        assert await page.locator("#total").inner_text() == "1"
        await page.screenshot(path=str(shots / "dashboard-failed.png"), full_page=True)

        await page.click("text=open")
        await page.wait_for_selector("text=Traceback")
        body = await page.inner_text("main")
        assert "ConnectionError" in body and "carrier API refused the connection" in body
        assert "tok_4242" not in body and "[REDACTED]" in body  # the stored event is redacted
        assert '"paid"' in body and '"shipped"' in body  # the diff, old -> new
        await page.screenshot(path=str(shots / "dashboard-job.png"), full_page=True)

        rdb.set(f"{shop_queue}:carrier:fixed", 1)
        runs_before = int(rdb.get(f"{shop_queue}:carrier:runs") or 0)
        await page.click("#retry")
        await page.wait_for_selector("text=Yes, retry")
        await page.click("#confirm")
        await page.wait_for_url("**/events/*?done=retried")
        # the worker runs it again; the page follows without a reload (htmx polls every second)
        await page.wait_for_selector("tr:has-text('shop.notify_carrier') .state-succeeded")
        await page.wait_for_selector("tr:has-text('shop.notify_carrier') >> text=label printed")
        assert int(rdb.get(f"{shop_queue}:carrier:runs") or 0) == runs_before + 1
        assert not rdb.hexists(f"{shop_queue}:failed:jobs", str(job_id))
        await page.screenshot(path=str(shots / "dashboard-event.png"), full_page=True)

        await page.click("nav >> text=Delayed")
        await page.wait_for_selector("text=shop_order.payment_reminder")
        await page.screenshot(path=str(shots / "dashboard-delayed.png"), full_page=True)
        await page.click("text=Cancel…")
        await page.click("#confirm")
        await page.wait_for_selector("#notice >> text=cancelled")
        assert rdb.zcard(f"{shop_queue}:schedule") == 0
        await browser.close()
    seconds = time.monotonic() - began
    print(f"\nbrowser session: {seconds:.1f} s")
    for name in ("overview", "failed", "job", "event", "delayed"):
        assert (shots / f"dashboard-{name}.png").stat().st_size > 10_000
    rdb.close()
