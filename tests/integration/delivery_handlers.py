"""Handlers the delivery tests' Celery worker imports (``ORMEVENTS_IMPORTS``).

Every handler records each call in the test's private Redis, under the worker's queue name:
``<queue>:rec:<handler>:<tag>`` (a list of JSON records), where ``tag`` is ``event.data["tag"]``.
The async handlers use clients created by the ``on_worker_start`` hook, on the worker loop.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from pydantic import BaseModel

from ormevents import Changed, Event, IsNow
from ormevents.changes.conditions import ChangeContext, Condition
from ormevents.delivery.celery.runtime import on_worker_start, on_worker_stop
from ormevents.handlers import event_handler, model_event_handler
from ormevents.handlers.retry import RetryPolicy

QUEUE = os.environ.get("ORMEVENTS_QUEUE", "")
_state: dict[str, Any] = {}


def _sync() -> redis.Redis:
    pid = os.getpid()
    if _state.get("pid") != pid:
        _state["pid"] = pid
        _state["sync"] = redis.Redis.from_url(os.environ["ORMEVENTS_REDIS_URL"])
    client: redis.Redis = _state["sync"]
    return client


def _record(handler: str, event: Event, **extra: Any) -> dict[str, Any]:
    return {
        "t": time.time(), "pid": os.getpid(), "event_id": str(event.id), "name": event.name,
        "data": event.to_dict()["data"], "changes": event.to_dict()["changes"],
        "metadata": event.to_dict()["metadata"], **extra,
    }


def record(handler: str, event: Event, **extra: Any) -> int:
    """Append a record of this call; return how many calls the (handler, tag) pair had."""
    key = f"{QUEUE}:rec:{handler}:{event.data.get('tag')}"
    return int(_sync().rpush(key, json.dumps(_record(handler, event, **extra))))


async def arecord(handler: str, event: Event, **extra: Any) -> int:
    key = f"{QUEUE}:rec:{handler}:{event.data.get('tag')}"
    return int(await _state["async_redis"].rpush(key, json.dumps(_record(handler, event, **extra))))


@on_worker_start
async def connect() -> None:
    _state["async_redis"] = redis.asyncio.Redis.from_url(os.environ["ORMEVENTS_REDIS_URL"])
    await _state["async_redis"].incr(f"{QUEUE}:hooks:started")
    mongo_url = os.environ.get("ORMEVENTS_TEST_MONGO_URL")
    if mongo_url:
        from pymongo import AsyncMongoClient

        _state["mongo"] = AsyncMongoClient(mongo_url)
        await _state["mongo"].admin.command("ping")


@on_worker_stop
async def disconnect() -> None:
    await _state["async_redis"].incr(f"{QUEUE}:hooks:stopped")
    await _state.pop("async_redis").aclose()
    mongo = _state.pop("mongo", None)
    if mongo is not None:
        await mongo.close()


class OrderPayload(BaseModel):
    tag: str
    total: int = 0


@event_handler("order.created", name="t.sync")
def sync_handler(event: Event) -> dict[str, Any]:
    record("t.sync", event)
    return {"seen": event.data.get("tag")}


@event_handler("order.created", name="t.async")
async def async_handler(event: Event) -> None:
    await arecord("t.async", event, loop_id=id(__import__("asyncio").get_running_loop()))


@event_handler("order.created", name="t.typed")
def typed_handler(payload: OrderPayload) -> None:
    _sync().rpush(f"{QUEUE}:rec:t.typed:{payload.tag}", json.dumps({"total": payload.total}))


@event_handler("order.*", name="t.order_any")
def order_any(event: Event) -> None:
    record("t.order_any", event)


@event_handler("*.deleted", name="t.any_deleted")
def any_deleted(event: Event) -> None:
    record("t.any_deleted", event)


@event_handler("order.**", name="t.order_deep")
def order_deep(event: Event) -> None:
    record("t.order_deep", event)


@event_handler("account.updated", when="status", changes_to="active", name="t.activated")
def activated(event: Event) -> None:
    record("t.activated", event)


@dataclass(frozen=True)
class BrokenUntilFixed(Condition):
    """A condition with a bug that a deploy fixes: raises until the test sets ``<queue>:fixed``,
    then holds when the event's data says ``go``."""

    def __call__(self, ctx: ChangeContext) -> bool:
        if not _sync().exists(f"{QUEUE}:fixed"):
            raise LookupError("a bug in this condition")
        return bool(ctx.current.get("go"))

    def paths(self) -> frozenset[str]:
        return frozenset()


@event_handler("cond.updated", condition=BrokenUntilFixed(), name="t.cond_fixable")
def cond_fixable(event: Event) -> None:
    record("t.cond_fixable", event)


@event_handler("cond.updated", condition=Changed("go") & IsNow("status", "active"), name="t.cond_incomplete")
def cond_incomplete(event: Event) -> None:
    record("t.cond_incomplete", event)


@event_handler("cond.updated", name="t.cond_plain")
def cond_plain(event: Event) -> None:
    record("t.cond_plain", event)


@event_handler("job.run", name="t.flaky",
               retry=RetryPolicy(max_retries=3, interval_start=0.3, interval_step=0.3, interval_max=1.0))
def flaky(event: Event) -> str:
    calls = record("t.flaky", event)
    if calls <= int(event.data.get("fail_times", 0)):
        raise RuntimeError(f"flaky failure {calls}")
    return "finally"


@event_handler("job.run", name="t.steady")
async def steady(event: Event) -> None:
    await arecord("t.steady", event)


@event_handler("job.linear", name="t.linear")
def always_fails_linear(event: Event) -> None:
    record("t.linear", event)
    raise ValueError("linear says no")


@event_handler("job.expo", name="t.expo",
               retry=RetryPolicy(max_retries=3, backoff="exponential", factor=0.25, jitter=None))
async def always_fails_expo(event: Event) -> None:
    await arecord("t.expo", event)
    raise ConnectionError("expo says no")


@event_handler("job.fatal", name="t.fatal", retry=RetryPolicy(max_retries=5, dont_retry_on=[KeyError]))
def fatal(event: Event) -> None:
    record("t.fatal", event)
    raise KeyError("missing")


@event_handler("reminder.due", name="t.reminder")
def reminder(event: Event) -> None:
    record("t.reminder", event)


@event_handler("mongo.ping", name="t.mongo")
async def mongo_ping(event: Event) -> int:
    collection = _state["mongo"]["delivery_tests"][f"pings_{event.data['tag']}"]
    await collection.insert_one({"n": event.data["n"]})
    count = await collection.count_documents({})
    await arecord("t.mongo", event, count=count)
    return int(count)


@event_handler("signup.done", name="t.chain")
def chain(event: Event) -> list[dict[str, Any]]:
    record("t.chain", event)
    tag = event.data["tag"]
    return [{"name": "email.sent", "payload": {"tag": tag, "to": "a@x.io"}},
            {"name": "email.sent", "payload": {"tag": tag, "to": "b@x.io"}}]


@event_handler("email.sent", name="t.email")
def email_sent(event: Event) -> None:
    record("t.email", event)


@model_event_handler("DeliveryUser", "created", name="t.model_created_sync")
def model_created(event: Event) -> None:
    record("t.model_created_sync", event)


@model_event_handler("DeliveryUser", "updated", name="t.model_updated_async")
async def model_updated(event: Event) -> None:
    await arecord("t.model_updated_async", event)


@event_handler("*.switch", name="t.switch",
               retry=RetryPolicy(max_retries=2, interval_start=0.1, interval_step=0, interval_max=0.1))
def switch(event: Event) -> str:
    """Fails until ``<queue>:switch:<tag>`` is set (the failed-job retry tests flip it)."""
    calls = record("t.switch", event)
    if not _sync().exists(f"{QUEUE}:switch:{event.data.get('tag')}"):
        raise RuntimeError(f"switch is off (call {calls})")
    return "switched"


@event_handler("status.check", name="t.status_work",
               retry=RetryPolicy(max_retries=2, interval_start=0.6, interval_step=0, interval_max=0.6))
def status_work(event: Event) -> dict[str, int]:
    calls = record("t.status_work", event)
    time.sleep(0.4)
    if calls <= int(event.data.get("fail_times", 0)):
        raise RuntimeError(f"status work failed (call {calls})")
    return {"ok": calls}


@event_handler("status.check", name="t.status_later")
def status_later(event: Event) -> None:
    record("t.status_later", event)


@event_handler("status.block", name="t.status_block")
def status_block(event: Event) -> None:
    record("t.status_block", event)
    time.sleep(float(event.data["sleep"]))


@event_handler("routed.job", name="t.routed", queue=f"{QUEUE}:slow",
               retry=RetryPolicy(max_retries=3, interval_start=0.1, interval_step=0, interval_max=0.1))
def routed(event: Event) -> None:
    """Runs on its own queue; fails ``fail_times`` times, or until ``<queue>:switch:<tag>`` is set."""
    calls = record("t.routed", event)
    if calls <= int(event.data.get("fail_times", 0)) or (
        event.data.get("needs_switch") and not _sync().exists(f"{QUEUE}:switch:{event.data.get('tag')}")
    ):
        raise RuntimeError(f"routed failure {calls}")


@event_handler("routed.job", name="t.unrouted")
def unrouted(event: Event) -> None:
    record("t.unrouted", event)


@event_handler("slow.sync", name="t.slow_sync", retry=RetryPolicy(max_retries=0))
def slow_sync(event: Event) -> None:
    record("t.slow_sync", event)
    time.sleep(float(event.data["sleep"]))
    record("t.slow_sync_done", event)


@event_handler("slow.async", name="t.slow_async", retry=RetryPolicy(max_retries=0))
async def slow_async(event: Event) -> None:
    import asyncio

    await arecord("t.slow_async", event)
    await asyncio.sleep(float(event.data["sleep"]))
    await arecord("t.slow_async_done", event)


@event_handler("poison.pill", name="t.poison",
               retry=RetryPolicy(max_retries=2, interval_start=0.1, interval_step=0, interval_max=0.1))
def poison(event: Event) -> None:
    """Kills its own pool process on every call (``os._exit``): a run that never returns."""
    record("t.poison", event)
    os._exit(1)


@event_handler("crash.once", name="t.crash_once",
               retry=RetryPolicy(max_retries=2, interval_start=0.1, interval_step=0, interval_max=0.1))
def crash_once(event: Event) -> str:
    """The first call of each tag waits to be killed (the test SIGKILLs its pool process); later calls succeed."""
    if record("t.crash_once", event) == 1:
        time.sleep(20)
        raise RuntimeError("was not killed")
    return "survived"


@event_handler("once.fails", name="t.no_retry", retry=RetryPolicy(max_retries=0))
def no_retry(event: Event) -> None:
    """Its own policy: no retry at all (the publisher's default says 3)."""
    record("t.no_retry", event)
    raise LookupError("no second chance")


@event_handler("slow.finish", name="t.slow_finish", retry=RetryPolicy(max_retries=0))
def slow_finish(event: Event) -> dict[str, str]:
    """Finishes (or fails, with ``fail``) after 0.6 s: its bookkeeping starts before a 1 s soft limit."""
    record("t.slow_finish", event)
    time.sleep(0.6)
    if event.data.get("fail"):
        raise RuntimeError("finished badly")
    return {"finished": event.data["tag"]}


@event_handler("hang.hard", name="t.hang_hard", retry=RetryPolicy(max_retries=1, interval_start=0.1))
def hang_hard(event: Event) -> None:
    """Outlives a hard ``task_time_limit``: Celery kills the pool process running it."""
    record("t.hang_hard", event)
    time.sleep(float(event.data["sleep"]))
