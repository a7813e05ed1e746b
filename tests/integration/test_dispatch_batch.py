"""Several events in one broker message (``ormevents.dispatch_batch``): each dispatched as if it had
come alone. In-process tests on a real Redis, then a real prefork worker: a burst handed over
together travels in a few messages, every handler runs once per event, a malformed event is
parked alone, and a handler that kills its process mid-batch is parked without losing or
repeating any other event of its batch."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.exceptions import Reject

from ormevents import Event
from ormevents.delivery.celery import batch
from ormevents.delivery.celery.envelope import batches
from ormevents.delivery.celery.worker import WorkerDelivery
from ormevents.handlers import HandlerRegistry, event_handler
from ormevents.jobs.status import read_status
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.worker_process import WorkerProcess, running
from tests.support.deliveries import recording_delivery

pytestmark = pytest.mark.integration


def test_a_hand_off_is_cut_evenly_and_shared_by_at_least_four_messages() -> None:
    def sizes(count: int, most: int = 32) -> list[int]:
        return [len(group) for group in batches(list(range(count)), most)]  # type: ignore[arg-type]

    assert sizes(0) == [] and sizes(1) == [1] and sizes(3) == [1, 1, 1] and sizes(4) == [1, 1, 1, 1]
    assert sizes(9) == [3, 2, 2, 2] and sizes(100) == [25, 25, 25, 25]
    assert sizes(500) == [32] * 4 + [31] * 12 and sum(sizes(500)) == 500
    assert sizes(5, most=1) == [1] * 5, "batch_events=1: one message per event"
    assert [g for group in batches(list(range(10)), 3) for g in group] == list(range(10)), "order kept"  # type: ignore[arg-type]


def _delivery(redis_uri: str, reg: HandlerRegistry) -> tuple[WorkerDelivery, list[dict[str, Any]]]:
    return recording_delivery(redis_uri, reg, "bat")


def test_each_event_of_a_batch_is_dispatched_alone_and_a_malformed_one_is_parked(redis_uri: str) -> None:
    reg, ran = HandlerRegistry(), []
    event_handler("b.x", name="b.one", registry=reg)(lambda event: ran.append(event.data["i"]))
    delivery, sent = _delivery(redis_uri, reg)
    events = [Event(name="b.x", data={"i": i}).to_dict() for i in range(3)]
    wires = [events[0], {"name": 42}, events[1], events[2]]
    assert delivery.dispatch_batch((wires, None)) == 3
    assert ran == [0, 1, 2] and sent == []
    jobs = delivery.redis.hgetall(delivery.keys.failed_jobs)
    assert len(jobs) == 1 and json.loads(next(iter(jobs.values())))["reason"] == "malformed_message"
    assert delivery.dispatch_batch((wires, None)) == 3, "a redelivered batch"
    assert ran == [0, 1, 2], "a completed run never runs again"
    with pytest.raises(Reject):
        delivery.dispatch_batch(({"not": "a list"}, None))
    assert len(delivery.redis.hgetall(delivery.keys.failed_jobs)) == 2
    delivery.redis.close()


def test_the_events_left_when_the_budget_is_spent_go_on_as_one_message(redis_uri: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "INLINE_BUDGET", 0.05)
    reg, ran = HandlerRegistry(), []

    def slow(event: Event) -> None:
        time.sleep(0.1)
        ran.append(event.data["i"])

    event_handler("b.y", name="b.slow", registry=reg)(slow)
    delivery, sent = _delivery(redis_uri, reg)
    events = [Event(name="b.y", data={"i": i}).to_dict() for i in range(4)]
    assert delivery.dispatch_batch((events, None), due=1.5) == 1
    assert ran == [0] and len(sent) == 1
    rest = sent[0]
    assert rest["task"] == "ormevents.dispatch_batch" and rest["id"] == f"{events[1]['id']}:batch3"
    assert [e["id"] for e in rest["args"][0]] == [e["id"] for e in events[1:]] and rest["kwargs"] == {"due": 1.5}
    monkeypatch.setattr(batch, "INLINE_BUDGET", 10.0)
    assert delivery.dispatch_batch(tuple(rest["args"]), **rest["kwargs"]) == 3
    assert ran == [0, 1, 2, 3]
    sent.clear()
    monkeypatch.setattr(batch, "INLINE_BUDGET", 0.05)
    delivery.dispatch_batch(([Event(name="b.y", data={"i": 8}).to_dict(), events[3]], None))
    assert sent[0]["task"] == "ormevents.dispatch" and sent[0]["id"] == f"{events[3]['id']}:dispatch"
    delivery.redis.close()


def test_a_run_batch_runs_one_handler_on_each_event_as_its_own_run(redis_uri: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay's run_handler_batch: each event runs as its run_handler would, with the batch's run id;
    a malformed event is parked alone; a second delivery runs nothing again; the rest goes on."""
    reg, ran = HandlerRegistry(), []
    event_handler("b.r", name="b.audit", registry=reg)(lambda event: ran.append(event.data["i"]))
    delivery, sent = _delivery(redis_uri, reg)
    events = [Event(name="b.r", data={"i": i}).to_dict() for i in range(3)]
    kwargs = {"first_at": 1.0, "options": {"replay": True}, "due": 1.0, "run_id": "replay:b.audit:x1"}
    args = ([events[0], "junk", events[1], events[2]], "b.audit", 0, None)
    assert delivery.run_batch(args, **kwargs) == 3
    assert ran == [0, 1, 2] and sent == []
    assert len(delivery.redis.hgetall(delivery.keys.failed_jobs)) == 1, "the junk entry is parked alone"
    assert delivery.run_batch(args, **kwargs) == 3 and ran == [0, 1, 2], "a redelivered batch runs nothing again"
    status = read_status(delivery.redis, delivery.keys, events[1]["id"])
    assert status is not None and status.handlers["b.audit"].state == "succeeded"
    with pytest.raises(Reject):
        delivery.run_batch((events, 7, 0, None), **kwargs)
    monkeypatch.setattr(batch, "INLINE_BUDGET", 0.0)
    fresh = [Event(name="b.r", data={"i": i}).to_dict() for i in range(10, 13)]
    assert delivery.run_batch((fresh, "b.audit", 0, None), **kwargs) == 1
    assert ran[-1] == 10 and sent[0]["task"] == "ormevents.run_handler_batch"
    assert sent[0]["args"][1:] == ["b.audit", 0, None] and sent[0]["kwargs"] == kwargs
    assert [e["id"] for e in sent[0]["args"][0]] == [e["id"] for e in fresh[1:]]
    delivery.redis.close()


# ----- a real worker --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def queue() -> str:
    return f"bw{uuid.uuid4().hex[:8]}:events"


@pytest.fixture(scope="module")
def worker(queue: str, redis_uri: str) -> Iterator[WorkerProcess]:
    with running(WorkerProcess(queue, redis_uri)) as process:
        yield process


async def test_a_burst_travels_in_a_few_messages_and_every_handler_runs_once(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess) -> None:
    t = tag()
    events = [Event(name="order.created", data={"tag": t, "total": i}) for i in range(60)]
    assert await bus.publish_many(events) == 60
    for handler in ("t.sync", "t.async", "t.order_any"):
        await wait_for(lambda h=handler: len(records(rdb, queue, h, t)) >= 60, timeout=30)  # type: ignore[misc]
    await asyncio.sleep(0.5)  # a second run of any would be recorded by now
    for handler in ("t.sync", "t.async", "t.order_any"):
        ids = [r["event_id"] for r in records(rdb, queue, handler, t)]
        assert sorted(ids) == sorted(str(e.id) for e in events), handler
    received = len(re.findall(r"Task ormevents\.dispatch_batch\[[^\]]+\] received", worker.log()))
    assert 4 <= received <= 8, f"60 events in {received} batch messages (expected 4 of 15)"


async def test_a_handler_that_kills_its_process_mid_batch_loses_and_repeats_nothing_else(
        bus: Any, rdb: redis.Redis, queue: str, worker: WorkerProcess) -> None:
    t = tag()
    events = [Event(name="order.created", data={"tag": t, "total": i}) for i in range(16)]
    poison = Event(name="poison.pill", data={"tag": t})
    events.insert(2, poison)  # the first message holds it after two good events, before two more
    assert await bus.publish_many(events) == 17
    job_id = f"{poison.id}:t.poison"
    deadline = time.monotonic() + 60
    while not rdb.hexists(f"{queue}:failed:jobs", job_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await wait_for(lambda: len(records(rdb, queue, "t.sync", t)) >= 16, timeout=30)
    await asyncio.sleep(1.0)  # a redelivery after parking would show now
    job = json.loads(rdb.hget(f"{queue}:failed:jobs", job_id) or "{}")
    assert (job.get("reason"), job.get("attempts")) == ("worker_lost", 3), job
    assert len(records(rdb, queue, "t.poison", t)) == 3, "the policy's three attempts, then parked"
    good = sorted(str(e.id) for e in events if e is not poison)
    assert sorted(r["event_id"] for r in records(rdb, queue, "t.sync", t)) == good, "each other event once"


def test_a_completion_travels_with_the_next_begin_and_never_waits_for_a_handler(
        redis_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run's COMPLETE rides in the next run's DISPATCH_BEGIN round trip: one round trip per
    event of its own, and an event's success is recorded before the next handler starts."""
    from redis.connection import AbstractConnection

    reg, seen = HandlerRegistry(), []
    delivery, _ = _delivery(redis_uri, reg)
    keys = delivery.keys

    def handler(event: Event) -> None:
        previous = event.data["previous"]
        if previous:  # the event before this one: recorded as succeeded before this handler runs
            status = delivery.redis.hget(keys.status(previous), "h|b.rt|state")
            seen.append(json.loads(status or "null"))

    event_handler("b.rt", name="b.rt", registry=reg)(handler)
    previous = None
    events = []
    for _ in range(20):
        event = Event(name="b.rt", data={"previous": previous})
        events.append(event.to_dict())
        previous = str(event.id)
    delivery.dispatch_batch((events[:1], None))  # scripts loaded, client connected
    sends = []
    real = AbstractConnection.send_packed_command
    monkeypatch.setattr(AbstractConnection, "send_packed_command",
                        lambda self, *a, **k: (sends.append(1), real(self, *a, **k))[1])
    assert delivery.dispatch_batch((events[1:], None)) == 19
    monkeypatch.setattr(AbstractConnection, "send_packed_command", real)
    assert seen == ["succeeded"] * 19
    last = json.loads(delivery.redis.hget(keys.status(previous), "h|b.rt|state") or "null")
    assert last == "succeeded", "the batch's end records the last completion"
    reads = 19  # the handler's own HGET per event
    assert len(sends) - reads <= 19 + 1, f"{len(sends) - reads} ledger round trips for 19 events"
    delivery.redis.close()


def test_a_failed_round_trip_abandons_the_waiting_completion(redis_uri: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis fails under the round trip that carries a completion: the run is abandoned (its next
    delivery runs it again, as when COMPLETE fails alone), never counted as a lost attempt."""
    reg, ran = HandlerRegistry(), []
    event_handler("b.f", name="b.f", registry=reg)(lambda event: ran.append(event.data["i"]))
    delivery, _ = _delivery(redis_uri, reg)
    events = [Event(name="b.f", data={"i": i}).to_dict() for i in range(2)]
    client = delivery.redis  # the ledger's client
    real = client.pipeline

    class Broken:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.pipe = real(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.pipe, name)

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(client, "pipeline", Broken)
    with pytest.raises(redis.ConnectionError):
        delivery.dispatch_batch((events, None))
    monkeypatch.setattr(client, "pipeline", real)
    assert ran == [0]
    assert delivery.dispatch_batch((events, None)) == 2, "the requeued batch"
    assert ran == [0, 0, 1], "the abandoned run ran again; nothing was counted lost"
    for event in events:
        status = read_status(delivery.redis, delivery.keys, event["id"])
        assert status is not None and status.handlers["b.f"].state == "succeeded"
    assert not delivery.redis.hlen(delivery.keys.failed_jobs)
    delivery.redis.close()


def test_each_thread_of_a_threads_pool_records_its_own_completions_before_it_returns(redis_uri: str) -> None:
    """With ``-P threads`` several tasks share one ledger: a task's completions are its thread's,
    recorded when its task ends, whatever the other threads are doing."""
    import threading

    reg = HandlerRegistry()
    inside, leave = threading.Event(), threading.Event()

    def handler(event: Event) -> None:
        if event.data["slow"]:
            inside.set()
            leave.wait(5)

    event_handler("b.t", name="b.t", registry=reg)(handler)
    delivery, _ = _delivery(redis_uri, reg)
    slow, quick = Event(name="b.t", data={"slow": True}), Event(name="b.t", data={"slow": False})
    thread = threading.Thread(target=delivery.dispatch_batch, args=(([slow.to_dict()], None),))
    thread.start()
    try:
        assert inside.wait(5)
        delivery.dispatch_batch(([quick.to_dict()], None))  # while the other task is in its handler
        status = read_status(delivery.redis, delivery.keys, str(quick.id))
        assert status is not None and status.handlers["b.t"].state == "succeeded", "recorded before it returned"
    finally:
        leave.set()
        thread.join(5)
    status = read_status(delivery.redis, delivery.keys, str(slow.id))
    assert status is not None and status.handlers["b.t"].state == "succeeded"
    delivery.redis.close()
