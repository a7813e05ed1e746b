"""The dispatch runs the handlers of its own queue itself, each as its own run in the ledger, and
sends messages for the others (handlers routed elsewhere, and those left when its budget or the
task's soft time limit ran out). The last tests use a real worker (handlers in
:mod:`tests.integration.fanout_handlers`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis

from ormevents import Event
from ormevents.delivery.celery import fanout
from ormevents.delivery.celery.soft_time_limit import SoftTimeLimitGuard
from ormevents.delivery.celery.worker import WorkerDelivery
from ormevents.handlers import HandlerRegistry, event_handler
from ormevents.handlers.retry import RetryPolicy
from ormevents.jobs.status import read_status
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.worker_process import WorkerProcess, running
from tests.support.deliveries import recording_delivery

pytestmark = pytest.mark.integration

IMPORTS = "tests.integration.delivery_handlers,tests.integration.fanout_handlers"


@pytest.fixture
def queue() -> str:
    """A queue of the test's own (``bus`` publishes to it; each real-worker test starts its worker)."""
    return f"fw{uuid.uuid4().hex[:8]}:events"


def _delivery(redis_uri: str, reg: HandlerRegistry) -> tuple[WorkerDelivery, list[dict[str, Any]]]:
    return recording_delivery(redis_uri, reg, "fan")


def test_local_handlers_run_in_the_dispatch_and_routed_ones_get_a_message(redis_uri: str) -> None:
    reg, ran = HandlerRegistry(), []
    event_handler("f.x", name="f.one", registry=reg)(lambda event: ran.append("one"))
    event_handler("f.x", name="f.two", registry=reg, retry=RetryPolicy(max_retries=1, min_delay=60))(
        lambda event: 1 / 0)
    event_handler("f.x", name="f.far", registry=reg, queue="elsewhere")(lambda event: ran.append("far"))
    delivery, sent = _delivery(redis_uri, reg)
    event = Event(name="f.x")
    assert delivery.dispatch((event.to_dict(), None)) == ["f.one", "f.two", "f.far"]
    assert ran == ["one"] and [(m["args"][1], m["kwargs"]["run_id"], m["kwargs"]["queue"]) for m in sent] == \
        [("f.far", "f.far@0", "elsewhere")]
    status = read_status(delivery.redis, delivery.keys, str(event.id))
    assert status is not None and {n: h.state for n, h in status.handlers.items()} == \
        {"f.one": "succeeded", "f.two": "retrying", "f.far": "queued"}   # each its own run, retried on its own
    assert delivery.dispatch((event.to_dict(), None)) == ["f.far"]   # a redelivered dispatch: f.two's retry is scheduled
    assert ran == ["one"], "a completed run never runs again"
    delivery.redis.close()


def test_handlers_left_when_the_budget_is_spent_are_sent(redis_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "INLINE_BUDGET", 0.05)
    reg, ran = HandlerRegistry(), []
    def slow(event: Event) -> None:
        time.sleep(0.1)
        ran.append("slow")

    event_handler("f.y", name="f.slow", registry=reg)(slow)
    event_handler("f.y", name="f.next", registry=reg)(lambda event: ran.append("next"))
    delivery, sent = _delivery(redis_uri, reg)
    delivery.dispatch((Event(name="f.y").to_dict(), None))
    assert ran == ["slow"] and [(m["args"][1], m["kwargs"]["run_id"]) for m in sent] == [("f.next", "f.next@0")]
    delivery.redis.close()


def test_the_begun_run_sent_as_a_message_is_abandoned_first(redis_uri: str) -> None:
    """The soft time limit closes its window between the dispatch's begin and the first inline run:
    that run is abandoned before its message is sent, so the message runs it (not "busy", not lost)."""
    class Closing(SoftTimeLimitGuard):
        asked = 0

        def leaves(self, seconds: float) -> bool:
            self.asked += 1
            return self.asked == 1  # open when the dispatch begins the run, closed right after

    reg, ran = HandlerRegistry(), []
    event_handler("f.z", name="f.first", registry=reg)(lambda event: ran.append("first"))
    delivery, sent = _delivery(redis_uri, reg)
    event = Event(name="f.z")
    delivery.dispatch((event.to_dict(), None), guard=Closing())
    assert ran == [] and [m["kwargs"]["run_id"] for m in sent] == ["f.first@0"]
    assert int(delivery.redis.hget(delivery.keys.gauges, "running|f.first") or 0) == 0
    delivery.run(tuple(sent[0]["args"]), **{k: v for k, v in sent[0]["kwargs"].items() if k != "queue"})
    status = read_status(delivery.redis, delivery.keys, str(event.id))
    assert ran == ["first"] and status is not None and status.handlers["f.first"].state == "succeeded"
    delivery.redis.close()


def _env(mongo_uri: str, **extra: str) -> dict[str, str]:
    """A worker with the fan-out handlers (one takes a session: MongoDB is required)."""
    return {"ORMEVENTS_IMPORTS": IMPORTS, "ORMEVENTS_MONGO_URL": mongo_uri,
            "ORMEVENTS_DATABASE": f"fan_{uuid.uuid4().hex[:8]}", **extra}


async def test_the_run_the_dispatch_began_runs_first(bus: Any, rdb: redis.Redis, queue: str, redis_uri: str,
                                                     mongo_uri: str) -> None:
    """``fo.session`` (registered first, 1.5 s) takes a session, so the dispatch begins ``fo.plain``'s
    run in its own round trip. That run goes first: sent as a message behind the 1 s budget instead,
    it would find its own lease held ("busy"), wait ~30 s and be counted lost (no retries: failed)."""
    with running(WorkerProcess(queue, redis_uri, concurrency=1, extra_env=_env(mongo_uri))) as worker:
        t = tag()
        event = Event(name="fan.order", data={"tag": t})
        published = time.time()
        await bus.publish(event)
        await wait_for(lambda: records(rdb, queue, "fo.session", t), timeout=15)
        plain = records(rdb, queue, "fo.plain", t)
        assert [r["outcome"] for r in plain] == ["done"] and plain[0]["t"] - published < 5, plain
        assert [r["outcome"] for r in records(rdb, queue, "fo.session", t)] == ["done"]
        assert plain[0]["t"] < records(rdb, queue, "fo.session", t)[0]["started"], "the begun run went first"
        assert rdb.hlen(f"{queue}:failed:jobs") == 0 and "died during attempt" not in worker.log()
        assert int(rdb.hget(f"{queue}:gauges", "running|fo.plain") or 0) == 0


async def test_an_inline_run_gets_a_soft_time_limit_window_of_its_own(bus: Any, rdb: redis.Redis, queue: str,
                                                                       redis_uri: str, mongo_uri: str) -> None:
    """With a 1 s soft time limit, ``fw.a`` (0.9 s) then ``fw.b`` (0.3 s) inline would leave ``fw.b``
    0.1 s of the dispatch task's limit: each runs in a window of its own, ``fw.b`` on its first attempt."""
    env = _env(mongo_uri, ORMEVENTS_CELERY_CONFIG="tests.integration.soft_limit_config")
    with running(WorkerProcess(queue, redis_uri, concurrency=1, extra_env=env)):
        t = tag()
        await bus.publish(Event(name="fan.window", data={"tag": t}))
        await wait_for(lambda: records(rdb, queue, "fw.a", t) and records(rdb, queue, "fw.b", t), timeout=10)
        await asyncio.sleep(0.3)  # a second attempt of either would be recorded by now
        assert [r["outcome"] for r in records(rdb, queue, "fw.a", t)] == ["done"]
        assert [r["outcome"] for r in records(rdb, queue, "fw.b", t)] == ["done"]
        assert rdb.hlen(f"{queue}:failed:jobs") == 0
