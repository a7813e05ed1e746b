"""``ormevents.attach_celery(app)`` on a user's existing Celery app: a worker started from the
user's own module (``celery -A tests.integration.user_celery_app worker -Q <their queue>``) runs
their task and ormevents' handlers; and what attaching does to, and refuses on, an app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

import ormevents
from ormevents import ConfigurationError, Event
from ormevents.handlers.registry import HandlerRegistry
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.worker_process import WorkerProcess, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def events_queue() -> str:
    return f"attach{uuid.uuid4().hex[:6]}:events"


@pytest.fixture(scope="module")
def user_worker(events_queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    own = f"{events_queue}:shop-tasks"
    env = {"SHOP_BROKER_URL": redis_uri, "SHOP_REDIS_URL": redis_uri, "SHOP_EVENTS_QUEUE": events_queue,
           "SHOP_TASK_QUEUE": own}
    # -Q names the user's own queue only: attach_celery adds the ormevents queue
    with running(WorkerProcess(events_queue, redis_uri, app="tests.integration.user_celery_app", consume=[own],
                               extra_env=env)) as process:
        yield process


async def test_a_worker_of_the_users_own_app_runs_their_tasks_and_the_handlers(
        user_worker: WorkerProcess, events_queue: str, redis_uri: str, mongo_uri: str) -> None:
    rdb = redis.Redis.from_url(redis_uri, decode_responses=True)
    await ormevents.init(mongo_uri=mongo_uri, database="attach_tests", redis_uri=redis_uri,
                         event_config={"queue_name": events_queue})
    try:
        t = tag()
        event = Event(name="order.created", data={"tag": t, "total": 3})
        await ormevents.event_bus.publish(event)
        await wait_for(lambda: len(records(rdb, events_queue, "t.sync", t)) == 1)
        await wait_for(lambda: (ormevents.get_runtime().publisher.redis.hexists(  # type: ignore[attr-defined]
            f"{events_queue}:done:{event.id}", "t.async")))
        status = await ormevents.event_bus.get_event_status(event.id)
        assert status is not None and status.handlers["t.sync"].state == "succeeded"
        delayed = Event(name="reminder.due", data={"tag": t})
        await ormevents.event_bus.publish(delayed, delay=0.3)  # the app's worker also polls the schedule
        await wait_for(lambda: len(records(rdb, events_queue, "t.reminder", t)) == 1)
    finally:
        await ormevents.close()
    ping = str(uuid.uuid4())
    sender = Celery("shop", broker=redis_uri, set_as_current=False)  # the user's web app sending their own task
    sender.send_task("shop.ping", args=[ping], queue=f"{events_queue}:shop-tasks")
    sender.close()
    await wait_for(lambda: rdb.get(f"shop:ping:{ping}") is not None)
    assert "ormevents.run_handler" in user_worker.log() and "shop.ping" in user_worker.log()
    rdb.close()


def _app(**conf: Any) -> Celery:
    app = Celery(f"app{uuid.uuid4().hex[:6]}", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.update(**conf)
    return app


def test_attaching_registers_the_tasks_routes_and_imports_keeping_the_apps_config() -> None:
    app = _app(task_routes={"shop.*": {"queue": "shop"}}, imports=("shop.tasks",), task_default_queue="shop")
    delivery = ormevents.attach_celery(app, redis_url="redis://127.0.0.1:1/0", queue="shop:events",
                                       imports=["shop.handlers"], handlers=HandlerRegistry(), env={})
    assert {"ormevents.dispatch", "ormevents.dispatch_batch", "ormevents.run_handler",
            "ormevents.run_handler_batch"} <= set(app.tasks)
    assert app.conf.task_routes == {"ormevents.dispatch": {"queue": "shop:events"},
                                    "ormevents.dispatch_batch": {"queue": "shop:events"},
                                    "ormevents.run_handler_batch": {"queue": "shop:events"},
                                    "ormevents.run_handler": {"queue": "shop:events"}, "shop.*": {"queue": "shop"}}
    assert app.conf.imports == ("shop.tasks", "shop.handlers")
    assert app.conf.broker_transport == "ormevents.delivery.celery.transport:Transport"
    assert app.conf.task_default_queue == "shop" and app.conf.broker_url == "redis://127.0.0.1:1/0"
    assert delivery.settings.queue_name == "shop:events" and app.ormevents_delivery is delivery
    task = app.tasks["ormevents.run_handler"]
    assert task.acks_late and task.reject_on_worker_lost and task.ignore_result


def test_a_list_of_routers_and_an_own_transport_are_kept() -> None:
    def router(name: str, *args: Any, **kwargs: Any) -> None:
        return None

    app = _app(task_routes=[router], broker_transport="redis")
    ormevents.attach_celery(app, redis_url="redis://127.0.0.1:1/0", handlers=HandlerRegistry(), env={})
    routes = app.conf.task_routes
    assert routes[0]["ormevents.dispatch"] == {"queue": "ormevents:events"} and routes[1] is router
    assert app.conf.broker_transport == "redis"


@pytest.mark.parametrize("conf, kwargs, message", [
    ({}, {}, "needs redis_url="),
    ({"accept_content": ["pickle"]}, {"redis_url": "redis://127.0.0.1:1/0"}, "add 'json' to accept_content"),
])
def test_attaching_refuses_what_cannot_work(conf: dict[str, Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ormevents.attach_celery(_app(**conf), handlers=HandlerRegistry(), env={}, **kwargs)


def test_attaching_twice_is_refused() -> None:
    app = _app()
    ormevents.attach_celery(app, redis_url="redis://127.0.0.1:1/0", handlers=HandlerRegistry(), env={})
    with pytest.raises(ConfigurationError, match="already attached"):
        ormevents.attach_celery(app, redis_url="redis://127.0.0.1:1/0", handlers=HandlerRegistry(), env={})
