"""The dashboard's security rules over HTTP: who may see it, the CSRF rule, the headers, the
bind rule of ``ormevents web``, and the app mounted inside another one."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import ormevents.web
from ormevents import ConfigurationError
from tests.integration.test_dashboard_http import LOCAL, client_for, csrf_of

pytestmark = pytest.mark.integration

REMOTE = ("203.0.113.7", 50000)
TOKEN = "t0ken-" + "x" * 20


@pytest.fixture
def queue() -> str:
    return f"dashsec{uuid.uuid4().hex[:6]}:events"


async def test_without_auth_only_local_clients_are_served(redis_uri: str, queue: str) -> None:
    app = ormevents.web.app(redis_url=redis_uri, queue=queue)
    async with client_for(app, LOCAL) as local, client_for(app, ("::1", 1)) as local6, client_for(app, REMOTE) as remote:
        assert (await local.get("/")).status_code == 200
        assert (await local6.get("/")).status_code == 200
        refused = await remote.get("/")
        assert refused.status_code == 403 and "only local requests" in refused.text
        assert (await remote.get("/static/htmx.min.js")).status_code == 403


async def test_token_auth_by_header_or_a_link_that_sets_a_session_cookie(redis_uri: str, queue: str) -> None:
    app = ormevents.web.app(redis_url=redis_uri, queue=queue, token=TOKEN)
    async with client_for(app, REMOTE) as browser:
        missing = await browser.get("/failed")
        assert missing.status_code == 401 and "authentication required" in missing.text
        assert (await browser.get("/failed", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await browser.get("/failed", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        assert (await browser.get("/failed", params={"token": "wrong"})).status_code == 401
        link = await browser.get("/failed", params={"token": TOKEN, "model": "order"})
        assert link.status_code == 303 and link.headers["location"] == "/failed?model=order"  # the token leaves the URL
        cookie = link.headers["set-cookie"]
        assert "ormevents_session=" in cookie and TOKEN not in cookie and "HttpOnly" in cookie
        assert (await browser.get("/failed")).status_code == 200  # the session cookie now
    async with client_for(app, LOCAL) as local:  # configured auth applies to local clients too
        assert (await local.get("/")).status_code == 401


async def test_basic_auth(redis_uri: str, queue: str) -> None:
    app = ormevents.web.app(redis_url=redis_uri, queue=queue, basic_auth="ops:s3cret-pass")

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    async with client_for(app, REMOTE) as browser:
        refused = await browser.get("/")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="ormevents"'
        assert (await browser.get("/", headers=basic("ops", "wrong"))).status_code == 401
        assert (await browser.get("/", headers={"Authorization": "Basic !!notbase64"})).status_code == 401
        assert (await browser.get("/", headers=basic("ops", "s3cret-pass"))).status_code == 200


@pytest.mark.parametrize("kwargs, message", [
    ({"token": "short"}, "at least 16 characters"),
    ({"basic_auth": "nopassword"}, "user:password"),
    ({"basic_auth": ":pw"}, "user:password"),
    ({"redis_url": "http://nope"}, "is not a valid URL"),
])
def test_bad_settings_are_refused(redis_uri: str, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ormevents.web.app(**{"redis_url": redis_uri, **kwargs})


async def test_security_headers_and_csrf_cookie(redis_uri: str, queue: str) -> None:
    async with client_for(ormevents.web.app(redis_url=redis_uri, queue=queue)) as browser:
        page = await browser.get("/")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    cookie = page.headers["set-cookie"]
    assert "ormevents_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


async def test_mounted_in_a_host_app_with_its_own_auth(redis_uri: str, queue: str) -> None:
    from ormevents import Event, event_bus, init
    from ormevents import close as ormevents_close

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("host app")

    host = Starlette(routes=[Route("/", home), Mount("/ormevents", ormevents.web.app(
        redis_url=redis_uri, queue=queue, host_auth=True))])
    await init(database=_mock_db(), redis_uri=redis_uri, event_config={"queue_name": queue})
    try:
        event = Event(name="reminder.due", data={})
        await event_bus.publish(event, delay=600)
        async with client_for(host, REMOTE) as browser:  # host_auth: the host app decided already
            assert (await browser.get("/")).text == "host app"
            page = await browser.get("/ormevents/delayed")
            assert page.status_code == 200
            assert re.search(r"ormevents_csrf=[^;]+; HttpOnly; Path=/ormevents;", page.headers["set-cookie"])
            assert 'href="/ormevents/static/dashboard.css"' in page.text
            assert f'href="/ormevents/delayed/cancel/{event.id}"' in page.text
            assert (await browser.get("/ormevents/static/dashboard.css")).status_code == 200
            confirm = await browser.get(f"/ormevents/delayed/cancel/{event.id}")
            assert f'action="/ormevents/delayed/cancel/{event.id}"' in confirm.text
            done = await browser.post(f"/ormevents/delayed/cancel/{event.id}", data={"csrf_token": csrf_of(confirm.text)})
            assert done.status_code == 303 and done.headers["location"] == "/ormevents/delayed?done=cancelled"
    finally:
        await ormevents_close()


def _mock_db() -> Any:
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()["dash"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ormevents", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "dashboard.example.com"])
def test_cli_refuses_a_non_local_bind_without_auth(redis_uri: str, host: str) -> None:
    result = _cli("--redis-url", redis_uri, "web", "--host", host, "--port", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing to serve the dashboard" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_rejects_a_short_token_in_one_line(redis_uri: str) -> None:
    result = _cli("--redis-url", redis_uri, "web", "--host", "0.0.0.0", env={"ORMEVENTS_WEB_TOKEN": "short"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "16 characters" in result.stderr


def test_cli_rejects_a_malformed_redis_url_in_one_line() -> None:
    result = _cli("--redis-url", "http://nope", "web")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "is not a valid URL" in result.stderr
