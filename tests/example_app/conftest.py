"""Fixtures of the example app's own tests: eager mode as a user sets it up.

* ``ormevents_app`` / ``captured_events`` come from the pytest plugin ormevents installs; it
  runs on the session's SecantusDB because ``ORMEVENTS_TEST_MONGO_URL`` names it;
* ``shop`` runs the handlers module's ``@on_worker_start`` hook (``connect``), as a worker
  would before its first task, with the ``SHOP_*`` settings pointing at that same database
  and at the session's private Redis.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
import redis.asyncio

from ormevents import get_runtime
from ormevents.handlers import Handler, registry
from ormevents.testing import EagerPublisher, HandlerRun

SHOP_PREFIX = "shop."
_parked: dict[str, list[Handler]] = {"shop": [], "others": []}


@pytest.fixture(autouse=True)
def _ormevents_app_on_secantus(monkeypatch: pytest.MonkeyPatch, mongo_uri: str) -> None:
    """Point the plugin's ``ormevents_app`` at the real server (it defaults to mongomock)."""
    monkeypatch.setenv("ORMEVENTS_TEST_MONGO_URL", mongo_uri)


@pytest.fixture(scope="package")
def shop_handlers() -> Iterator[ModuleType]:
    """``example_app.handlers`` alone in the default registry while this package runs.

    Other test modules (the docs examples) leave handlers of their own in the default registry,
    some on ``user.created``; they would run here too and move the simulated clock with their
    retries. The shop's handlers are in turn taken out afterwards, so that their ``"*"`` audit
    handler does not run in other modules' eager tests.
    """
    from ormevents.delivery.celery.runtime import hooks

    handlers = importlib.import_module("example_app.handlers")
    for handler in _parked["shop"]:  # registered at first import, parked by an earlier teardown
        registry.add(handler)
    _parked["shop"] = []
    others = [registry.get(name) for name in registry.names() if not name.startswith(SHOP_PREFIX)]
    _parked["others"] = [handler for handler in others if handler is not None]
    for handler in _parked["others"]:
        registry.remove(handler.name)
    try:
        yield handlers
    finally:
        shop = [registry.get(name) for name in registry.names() if name.startswith(SHOP_PREFIX)]
        _parked["shop"] = [handler for handler in shop if handler is not None]
        for handler in _parked["shop"]:
            registry.remove(handler.name)
        for handler in _parked["others"]:
            registry.add(handler)
        _parked["others"] = []
        # Eager mode never runs worker hooks (``shop`` calls connect() itself): drop them for good.
        for hook_list, hook in ((hooks.start, handlers.connect), (hooks.stop, handlers.disconnect)):
            while hook in hook_list:
                hook_list.remove(hook)


@dataclass
class Shop:
    """What a test of the example app works with."""

    publisher: EagerPublisher
    database: Any
    redis: redis.asyncio.Redis
    handlers: ModuleType

    def runs(self, handler: str, event_name: str | None = None) -> list[HandlerRun]:
        """Eager runs of ``handler`` (optionally on events named ``event_name``), in order."""
        return [run for run in self.publisher.runs
                if run.handler == handler and (event_name is None or run.event.name == event_name)]

    def handled(self) -> list[tuple[str, str]]:
        """``(event name, handler)`` of every handler run, in order."""
        return [(run.event.name, run.handler) for run in self.publisher.runs]

    async def timeline(self, handler: str) -> list[tuple[str, int, str, str]]:
        """``(event, attempt, outcome, detail)`` the handler noted in the ``timeline`` collection."""
        cursor = self.database.timeline.find({"handler": handler}, sort=[("_id", 1)])  # ids grow in insertion order
        return [(e["event"], e["attempt"], e["outcome"], e["detail"]) async for e in cursor]


@pytest.fixture
async def shop(
    ormevents_app: EagerPublisher,
    shop_handlers: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    mongo_uri: str,
    redis_uri: str,
) -> AsyncIterator[Shop]:
    """Eager ormevents plus the handlers' clients, connected by their ``@on_worker_start`` hook."""
    database = get_runtime().database
    monkeypatch.setenv("SHOP_MONGO_URI", mongo_uri)
    monkeypatch.setenv("SHOP_REDIS_URI", redis_uri)
    monkeypatch.setenv("SHOP_DATABASE", database.name)
    await shop_handlers.connect()
    client = redis.asyncio.Redis.from_url(redis_uri, decode_responses=True)
    try:
        yield Shop(ormevents_app, database, client, shop_handlers)
    finally:
        await shop_handlers.disconnect()
        clients = shop_handlers.clients
        clients.mongo = clients.redis = clients.settings = None
        # The handlers count attempts under keys named after each event: remove exactly those.
        for record in ormevents_app.published:
            keys = [key async for key in client.scan_iter(match=f"shop:attempts:{record.event.id}:*")]
            if keys:
                await client.delete(*keys)
        await client.aclose()
