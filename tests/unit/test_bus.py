"""Pure parts of publishing and the worker runtime: due times, settings, celeryconfig, the worker loop."""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ormevents import Event
from ormevents.delivery.base import due_time
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.runtime import WorkerLoop
from ormevents.delivery.celery.sending import dispatch_message, run_message
from ormevents.urls import redact_url
from ormevents.errors import ConfigurationError
from ormevents.handlers.retry import RetryPolicy


def test_due_time() -> None:
    assert due_time(None, None) is None
    assert due_time(0, None) is None and due_time(-3, None) is None
    now = datetime.now(UTC).timestamp()
    assert now + 59 < due_time(60, None) < now + 61  # type: ignore[operator]
    eta = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert due_time(None, eta) == eta.timestamp()
    assert due_time(None, datetime(2030, 1, 1, 10)) == eta.timestamp()  # naive = UTC
    for bad in [(1, eta), ("1", None), (True, None), (float("nan"), None), (None, "tomorrow")]:
        with pytest.raises(ConfigurationError):
            due_time(*bad)  # type: ignore[arg-type]


def test_settings_from_env_and_celery_conf() -> None:
    env = {
        "ORMEVENTS_REDIS_URL": "redis://r:6379/1",
        "ORMEVENTS_QUEUE": "shop:events",
        "ORMEVENTS_IMPORTS": "shop.handlers, shop.more ,",
        "ORMEVENTS_RETRY_POLICY": '{"max_retries": 7}',
        "ORMEVENTS_VISIBILITY_TIMEOUT": "30",
    }
    settings = DeliverySettings.from_env(env)
    assert settings.broker == "redis://r:6379/1" and settings.imports == ("shop.handlers", "shop.more")
    assert settings.retry_policy == RetryPolicy(max_retries=7)
    conf = settings.celery_conf()
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"] and conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["broker_transport_options"]["visibility_timeout"] == 30.0
    assert conf["broker_transport"] == "ormevents.delivery.celery.transport:Transport"
    amqp = DeliverySettings.from_env({**env, "ORMEVENTS_BROKER_URL": "amqp://guest@rabbit//"}).celery_conf()
    assert amqp["broker_url"] == "amqp://guest@rabbit//" and "broker_transport" not in amqp
    assert amqp["broker_transport_options"] == {}


@pytest.mark.parametrize("env", [{}, {"ORMEVENTS_REDIS_URL": "redis://x", "ORMEVENTS_RETRY_POLICY": "[1]"},
                                 {"ORMEVENTS_REDIS_URL": "redis://x", "ORMEVENTS_RETRY_POLICY": "{bad"}])
def test_settings_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        DeliverySettings.from_env(env)


def test_celeryconfig_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORMEVENTS_REDIS_URL", "redis://r:6379/0")
    monkeypatch.setenv("ORMEVENTS_BROKER_URL", "amqp://guest:guest@rabbit//")
    monkeypatch.setenv("ORMEVENTS_IMPORTS", "shop.handlers")
    sys.modules.pop("celeryconfig", None)
    config = importlib.import_module("celeryconfig")
    try:
        assert config.broker_url == "amqp://guest:guest@rabbit//"
        assert config.accept_content == ["json"] and config.task_acks_late and config.task_reject_on_worker_lost
        assert config.imports == ("shop.handlers",) and config.worker_prefetch_multiplier == 1
    finally:
        sys.modules.pop("celeryconfig", None)


def test_messages_have_stable_ids() -> None:
    wire = {"id": "e1", "name": "a.b"}
    assert dispatch_message(wire, None) == {"task": "ormevents.dispatch", "args": [wire, None], "kwargs": {},
                                            "id": "e1:dispatch"}
    assert dispatch_message(wire, None, {"status_ttl": 5}, 1.5)["kwargs"] == {"options": {"status_ttl": 5}, "due": 1.5}
    message = run_message(wire, "h", 2, {"max_retries": 1}, 5.0)
    run_id = message["kwargs"].pop("run_id")
    assert message["id"] == "e1:h:2" and message["kwargs"] == {"first_at": 5.0}
    assert len(run_id) == 16 and run_message(wire, "h", 2, None)["kwargs"]["run_id"] != run_id  # one per message
    routed = run_message(wire, "h", 0, None, queue="emails")
    assert routed["kwargs"]["queue"] == "emails"  # sent there; known to the worker
    assert redact_url("amqp://user:secret@host//") == "amqp://user:***@host//"


def test_worker_loop_is_one_persistent_loop_with_hooks() -> None:
    calls: list[str] = []

    async def start_hook() -> None:
        calls.append("start")

    def stop_hook() -> None:
        calls.append("stop")

    async def which_loop() -> int:
        return id(asyncio.get_running_loop())

    loop = WorkerLoop()
    with pytest.raises(RuntimeError, match="start"):
        loop.run(which_loop())
    loop.start([start_hook])
    loop.start([start_hook])  # idempotent
    try:
        first, second = loop.run(which_loop()), loop.run(which_loop())
        assert first == second and calls == ["start"]
        assert loop.loop is not None and loop._thread is not threading.current_thread()

        async def fails() -> None:
            raise KeyError("inside")

        with pytest.raises(KeyError):
            loop.run(fails())

        finished: list[str] = []

        async def slow() -> None:
            await asyncio.sleep(0.5)
            finished.append("slow")

        with pytest.raises(TimeoutError):      # as a soft time limit interrupts the wait
            loop.run(slow(), timeout=0.05)
        loop.run(asyncio.sleep(0.6))
        assert finished == []                  # the interrupted coroutine was cancelled, not left running

        async def lingering() -> None:
            await asyncio.sleep(3600)

        asyncio.run_coroutine_threadsafe(lingering(), loop.loop)
    finally:
        loop.close([stop_hook])
    assert calls == ["start", "stop"] and not loop.running


def test_infrastructure_errors_requeue_instead_of_dropping() -> None:
    import redis
    from celery.exceptions import Reject

    from ormevents.delivery.celery.tasks import requeue_on_infrastructure_error
    from ormevents.errors import BrokerUnavailableError

    def redis_down() -> None:
        raise redis.ConnectionError("down")

    def broker_down() -> None:
        raise BrokerUnavailableError("down")

    def bug() -> None:
        raise KeyError("not infrastructure")

    for func in (redis_down, broker_down):
        with pytest.raises(Reject) as info:
            requeue_on_infrastructure_error(func, pause=0)
        assert info.value.requeue is True
    with pytest.raises(KeyError):
        requeue_on_infrastructure_error(bug, pause=0)
    assert requeue_on_infrastructure_error(lambda x: x + 1, 1, pause=0) == 2


def test_async_callables_run_on_the_worker_loop() -> None:
    from ormevents.delivery.celery.worker import WorkerDelivery
    from ormevents.handlers import HandlerRegistry, event_handler

    class AsyncCallable:
        async def __call__(self, event: Event) -> str:
            return f"{event.name} on {id(asyncio.get_running_loop())}"

    async def coroutine_function(event: Event) -> int:
        return id(asyncio.get_running_loop())

    reg = HandlerRegistry()
    event_handler("a.b", name="obj", registry=reg)(AsyncCallable())
    event_handler("a.b", name="fn", registry=reg)(coroutine_function)
    delivery = WorkerDelivery(DeliverySettings(redis_url="redis://unused"), reg, app=None)  # type: ignore[arg-type]  # no I/O here
    try:
        event = Event(name="a.b")
        loop_id = delivery._invoke(reg.get("fn"), event)  # type: ignore[arg-type]
        assert delivery._invoke(reg.get("obj"), event) == f"a.b on {loop_id}"  # type: ignore[arg-type]
        assert delivery._invoke(reg.get("fn"), event) == loop_id  # type: ignore[arg-type]  # same loop every time
    finally:
        delivery.process_stopping()
