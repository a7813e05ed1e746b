"""The dashboard over HTTP (ASGI, in process) against the shared real worker's queue: pages,
filters, paging, actions with their confirmation, CSRF, and failure paths (bad ids, bad filters)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis

import ormevents.web
from ormevents import Event
from ormevents.jobs import FailedJob
from ormevents.jobs.redis_store import FailedJobStore
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.test_failed_jobs import failed_switch

pytestmark = pytest.mark.integration

LOCAL = ("127.0.0.1", 40001)


def client_for(app: Any, address: tuple[str, int] = LOCAL, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client talking to ``app`` in process, as if from ``address``."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=address), base_url="http://dash",
                             **kwargs)


@pytest.fixture
async def dash(ops_worker: Any, ops_queue: str, redis_uri: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(ormevents.web.app(redis_url=redis_uri, queue=ops_queue)) as client:
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the confirmation page has no CSRF field"
    return found.group(1)


async def test_overview_shows_counters_handlers_failed_jobs_and_the_worker(
        dash: httpx.AsyncClient, ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    model = f"dash{uuid.uuid4().hex[:6]}"
    await failed_switch(ops_bus, ops_redis, ops_queue, tag(), name=f"{model}.switch")
    response = await dash.get("/")
    assert response.status_code == 200, response.text
    page = response.text
    assert "t.switch" in page and "builtins.RuntimeError" in page  # by handler and by error type
    assert re.search(r'class="n">(\d+)</span><span class="label">failed jobs stored', page)
    assert "<svg class=\"chart\"" in page and "runs failed or retried" in page
    await wait_for(lambda: ops_redis.hlen(f"{ops_queue}:workers") >= 1)
    page = (await dash.get("/")).text
    assert "pid " in page and ops_queue in page  # the worker, and its queue's depth
    assert 'hx-trigger="every 5.0s"' in page and 'hx-select="#live"' in page  # live refresh


async def test_failed_list_filters_and_opens_a_job_with_its_diff_and_traceback(
        dash: httpx.AsyncClient, ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    model = f"dash{uuid.uuid4().hex[:6]}"
    event = Event(name=f"{model}.switch", data={"tag": tag(), "plan": "pro"},
                  changes={"plan": ("free", "pro"), "note": (None, "x")})
    await ops_bus.publish(event)
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:failed:jobs", f"{event.id}:t.switch"))
    listed = await dash.get("/failed", params={"model": model})
    assert listed.status_code == 200
    assert re.search(r'id="total">1</strong>', listed.text) and str(event.id) in listed.text
    other = await dash.get("/failed", params={"model": model, "exception": "builtins.KeyError"})
    assert 'id="total">0</strong>' in other.text and str(event.id) not in other.text
    assert 'id="total">0</strong>' in (await dash.get("/failed", params={"model": model, "since": "2099-01-01"})).text
    job = await dash.get(f"/failed/job/{event.id}:t.switch")
    assert job.status_code == 200
    text = job.text
    assert "switch is off (call 3)" in text and "Traceback" in text and "RuntimeError" in text
    assert re.search(r"<th>attempts</th><td>3", text)
    row = re.search(r"<code>plan</code>.*?</tr>", text, re.S)
    assert row and row.group(0).index("&#34;free&#34;") < row.group(0).index("→") < row.group(0).index("&#34;pro&#34;")
    assert re.search(r"<code>note</code>.*?<code>null</code>", text, re.S)  # None is null, not hidden


@pytest.mark.parametrize("query, message", [
    ({"since": "yesterday-ish"}, "is not a date"),
    ({"cursor": "%%%"}, "invalid cursor"),
    ({"limit": "7"}, "limit must be one of"),
    ({"limit": "many"}, "must be a whole number"),
])
async def test_bad_filters_are_a_400_page(dash: httpx.AsyncClient, query: dict[str, str], message: str) -> None:
    response = await dash.get("/failed", params=query)
    assert response.status_code == 400 and message in response.text


@pytest.mark.parametrize("path, status, message", [
    ("/failed/job/nope:t.switch", 404, "no failed job"),
    ("/failed/retry/nope:t.switch", 404, "no failed job"),
    ("/failed/explode/nope", 404, "no such action"),
    ("/events/not-a-uuid", 400, "is not an event id"),
    (f"/events/{uuid.UUID(int=0x5EED)}", 404, "no status for event"),
    ("/delayed/cancel/not-a-uuid", 400, "is not an event id"),
    (f"/delayed/cancel/{uuid.UUID(int=0x5EED)}", 404, "is not waiting in the schedule"),
    ("/delayed?start=-5", 400, "start must be 0 or more"),
])
async def test_bad_ids_are_answered_not_crashed(dash: httpx.AsyncClient, path: str, status: int, message: str) -> None:
    response = await dash.get(path)
    assert response.status_code == status and message in response.text


async def test_retry_needs_a_confirmed_post_with_its_csrf_token_then_runs_on_the_worker(
        dash: httpx.AsyncClient, ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    t = tag()
    event = await failed_switch(ops_bus, ops_redis, ops_queue, t, name=f"dash{uuid.uuid4().hex[:6]}.switch")
    job_id = f"{event.id}:t.switch"
    confirm = await dash.get(f"/failed/retry/{job_id}")  # GET only asks
    assert confirm.status_code == 200 and "Yes, retry" in confirm.text
    assert ops_redis.hexists(f"{ops_queue}:failed:jobs", job_id)
    refused = await dash.post(f"/failed/retry/{job_id}", data={})
    assert refused.status_code == 403 and "CSRF" in refused.text
    forged = await dash.post(f"/failed/retry/{job_id}", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    async with client_for(dash._transport.app) as stranger:  # type: ignore[attr-defined]  # another browser: no cookie
        assert (await stranger.post(f"/failed/retry/{job_id}", data={"csrf_token": csrf_of(confirm.text)})).status_code == 403
    assert ops_redis.hexists(f"{ops_queue}:failed:jobs", job_id) and len(records(ops_redis, ops_queue, "t.switch", t)) == 3
    ops_redis.set(f"{ops_queue}:switch:{t}", 1)
    done = await dash.post(f"/failed/retry/{job_id}", data={"csrf_token": csrf_of(confirm.text)})
    assert done.status_code == 303 and done.headers["location"] == f"/events/{event.id}?done=retried"
    await wait_for(lambda: len(records(ops_redis, ops_queue, "t.switch", t)) == 4)
    assert not ops_redis.hexists(f"{ops_queue}:failed:jobs", job_id)
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:done:{event.id}", "t.switch"))
    page = (await dash.get(f"/events/{event.id}")).text
    assert "state-succeeded" in page and "&#34;switched&#34;" in page
    again = await dash.post(f"/failed/retry/{job_id}", data={"csrf_token": csrf_of(confirm.text)})
    assert again.status_code == 409 and "already retried" in again.text


async def test_bulk_remove_confirms_the_count_then_removes_only_the_matches(
        dash: httpx.AsyncClient, ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    model = f"dash{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        await failed_switch(ops_bus, ops_redis, ops_queue, tag(), name=f"{model}.switch")
    keep = await failed_switch(ops_bus, ops_redis, ops_queue, tag(), name=f"keep{model}.switch")
    confirm = await dash.get("/failed/remove-all", params={"model": model})
    assert "Remove 3 failed job(s) matching model=" in confirm.text
    assert (await dash.get("/failed", params={"model": model})).text.count(">open</a>") == 3
    done = await dash.post("/failed/remove-all", data={"model": model, "csrf_token": csrf_of(confirm.text)})
    assert done.status_code == 303 and "count=3" in done.headers["location"]
    assert 'id="total">0</strong>' in (await dash.get("/failed", params={"model": model})).text
    assert ops_redis.hexists(f"{ops_queue}:failed:jobs", f"{keep.id}:t.switch")
    nothing = await dash.get("/failed/retry-all", params={"model": model})
    assert "Nothing matches" in nothing.text and "disabled" in nothing.text


async def test_pages_walk_every_job_once_by_cursor(redis_uri: str) -> None:
    queue = f"dashpages{uuid.uuid4().hex[:6]}:events"
    client = redis.Redis.from_url(redis_uri)
    store = FailedJobStore(client, queue)
    base = time.time() - 1000  # recent: retention evicts jobs older than 30 days
    for n in range(120):
        event = Event(name="order.shipped", data={"n": n})
        store.record(FailedJob(id=FailedJob.make_id(str(event.id), "h"), queue=queue, handler="h",
                               event=event.to_dict(), event_id=str(event.id), event_name=event.name, model="order",
                               error_type="builtins.ValueError", error_message=f"m{n}", attempts=1,
                               failed_at=datetime.fromtimestamp(base + n // 2, UTC)))
    seen: list[str] = []
    async with client_for(ormevents.web.app(redis_url=redis_uri, queue=queue)) as dash:
        url: str | None = "/failed?limit=50"
        while url:
            page = (await dash.get(url)).text
            seen += re.findall(r'href="/failed/job/([^"]+)">open</a>', page)
            found = re.search(r'id="next" href="([^"]+)"', page)
            url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 120 == len(set(seen))
    client.delete(*client.keys(f"{queue}:*"))
    client.close()


async def test_delayed_events_are_listed_and_cancelled_after_confirmation(
        dash: httpx.AsyncClient, ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    event = Event(name="reminder.due", data={"tag": tag()})
    await ops_bus.publish(event, delay=3600)
    listed = await dash.get("/delayed")
    assert str(event.id) in listed.text and "delayed event" in listed.text
    confirm = await dash.get(f"/delayed/cancel/{event.id}")
    assert ops_redis.zscore(f"{ops_queue}:schedule", f"event:{event.id}") is not None  # GET changed nothing
    done = await dash.post(f"/delayed/cancel/{event.id}", data={"csrf_token": csrf_of(confirm.text)})
    assert done.status_code == 303 and done.headers["location"] == "/delayed?done=cancelled"
    assert ops_redis.zscore(f"{ops_queue}:schedule", f"event:{event.id}") is None
    assert (await ops_bus.get_event_status(event.id)).state == "cancelled"


async def test_state_changes_are_never_reachable_by_get_on_page_urls(dash: httpx.AsyncClient) -> None:
    for path in ("/", "/failed", "/delayed", f"/events/{uuid.uuid4()}"):
        assert (await dash.post(path, data={})).status_code == 405


async def test_bulk_retry_reruns_every_match_on_the_worker(
        dash: httpx.AsyncClient, ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    model = f"dash{uuid.uuid4().hex[:6]}"
    tags = [tag(), tag()]
    for t in tags:
        await failed_switch(ops_bus, ops_redis, ops_queue, t, name=f"{model}.switch")
        ops_redis.set(f"{ops_queue}:switch:{t}", 1)
    confirm = await dash.get("/failed/retry-all", params={"model": model})
    assert "Retry 2 failed job(s) matching model=" in confirm.text
    done = await dash.post("/failed/retry-all", data={"model": model, "csrf_token": csrf_of(confirm.text)})
    assert done.status_code == 303 and "done=retried&count=2" in done.headers["location"]
    for t in tags:
        await wait_for(lambda t=t: len(records(ops_redis, ops_queue, "t.switch", t)) == 4)  # type: ignore[misc]
    assert 'id="total">0</strong>' in (await dash.get("/failed", params={"model": model})).text


async def test_a_malformed_message_can_be_read_and_removed_not_retried(
        dash: httpx.AsyncClient, ops_redis: redis.Redis, ops_queue: str, redis_uri: str) -> None:
    from ormevents.delivery.celery.malformed import malformed_job

    job = malformed_job('{"oops": <b>1</b>}', "not JSON text", ops_queue, "host:1", None, time.time())
    store = FailedJobStore(redis.Redis.from_url(redis_uri), ops_queue)
    store.record(job)
    page = await dash.get(f"/failed/job/{job.id}")
    assert "not retryable" in page.text and 'id="retry"' not in page.text
    assert "&lt;b&gt;1&lt;/b&gt;" in page.text and "<b>1</b>" not in page.text  # data is escaped, never markup
    confirm = await dash.get(f"/failed/remove/{job.id}")
    refused = await dash.post(f"/failed/retry/{job.id}", data={"csrf_token": csrf_of(confirm.text)})
    assert refused.status_code == 409 and "malformed message" in refused.text
    removed = await dash.post(f"/failed/remove/{job.id}", data={"csrf_token": csrf_of(confirm.text)})
    assert removed.status_code == 303 and not ops_redis.hexists(f"{ops_queue}:failed:jobs", job.id)
    store.client.close()


async def test_a_bulk_confirmation_with_a_bad_filter_is_a_400(dash: httpx.AsyncClient) -> None:
    response = await dash.get("/failed/retry-all", params={"since": "soonish"})
    assert response.status_code == 400 and "is not a date" in response.text
