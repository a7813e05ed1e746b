"""The Redis schedule's Lua scripts against a real Redis: atomic claims, leases, cancel."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from ormevents.delivery.celery.poller import SchedulerThread
from ormevents.delivery.celery.scheduler import RedisSchedule
from ormevents.jobs.keys import Keys

pytestmark = pytest.mark.integration


@pytest.fixture
def schedule(redis_uri: str) -> Iterator[RedisSchedule]:
    client = redis.Redis.from_url(redis_uri)
    keys = Keys(f"s{uuid.uuid4().hex[:8]}:events")
    yield RedisSchedule(client, keys, lease=30)
    client.delete(keys.schedule, keys.inflight, keys.payloads, keys.inflight_claims)
    client.close()


def test_concurrent_claims_never_take_the_same_entry(schedule: RedisSchedule) -> None:
    now = time.time()
    for n in range(500):
        schedule.add(f"event:{n}", {"n": n}, now - 1)
    taken: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        while True:
            items = schedule.claim(time.time(), limit=7)
            if not items:
                return
            with lock:
                taken.extend(member for member, _ in items)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(f"event:{n}" for n in range(500))


def test_lease_expiry_makes_an_unsent_entry_due_again(schedule: RedisSchedule) -> None:
    schedule.lease = 0.2
    schedule.add("event:x", {"task": "t"}, time.time() - 1)
    assert [m for m, _ in schedule.claim(time.time())] == ["event:x"]
    assert schedule.claim(time.time()) == []          # hidden while leased
    assert schedule.pending() == 1 and schedule.cancel("event:x") is False  # too late: being sent
    time.sleep(0.25)
    assert schedule.claim(time.time()) == [("event:x", {"task": "t"})]  # the claimer died: sent again
    schedule.done("event:x")
    assert schedule.pending() == 0 and schedule.claim(time.time() + 100) == []


def test_add_replaces_and_cancel_removes(schedule: RedisSchedule) -> None:
    schedule.add("event:a", {"v": 1}, time.time() + 100)
    schedule.add("event:a", {"v": 2}, time.time() + 200)
    assert schedule.pending() == 1 and schedule.due_at("event:a") is not None
    assert schedule.cancel("event:a") is True and schedule.cancel("event:a") is False
    assert schedule.due_at("event:a") is None and schedule.next_due() is None
    schedule.add("event:b", {"v": 1}, time.time() + 100)
    schedule.add("event:b", {"v": 2}, time.time() + 200)
    assert schedule.claim(time.time() + 300) == [("event:b", {"v": 2})]


def test_thread_sends_due_entries_in_order_and_retries_failed_sends(schedule: RedisSchedule) -> None:
    sent: list[int] = []
    failures = {"left": 1}

    def send(message: dict[str, int]) -> None:
        if message["n"] == 2 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("broker hiccup")
        sent.append(message["n"])

    now = time.time()
    for n in range(3):
        schedule.add(f"event:{n}", {"n": n}, now + 0.1 * (n + 1))
    thread = SchedulerThread(schedule, send, poll=0.02)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while len(sent) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        thread.stop()
    assert sent == [0, 1, 2] and schedule.pending() == 0


def test_cancel_true_means_never_sent(schedule: RedisSchedule) -> None:
    schedule.add("event:c", {"task": "t"}, time.time() - 1)
    assert schedule.cancel("event:c") is True
    assert schedule.claim(time.time()) == [] and schedule.pending() == 0


def _sent_counts(sent: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for member in sent:
        counts[member] = counts.get(member, 0) + 1
    return counts


def test_two_pollers_and_a_slow_broker_send_each_due_entry_once(redis_uri: str, schedule: RedisSchedule) -> None:
    """A batch outlives its lease while a slow broker takes it: the claimant renews, nobody else sends it."""
    schedule.lease = 1.5                              # renewed every 0.5 s: a 1 s stall of this VM is tolerated
    other = RedisSchedule(redis.Redis.from_url(redis_uri), schedule.keys, lease=1.5)
    now = time.time()
    for n in range(100):
        schedule.add(f"event:{n}", {"member": f"event:{n}"}, now - 1)
    sent: list[str] = []
    lock = threading.Lock()

    def slow_send(message: dict[str, str]) -> None:
        time.sleep(0.03)                              # 100 sends: 3 s, twice the lease
        with lock:
            sent.append(message["member"])

    pollers = [SchedulerThread(schedule, slow_send, poll=0.02), SchedulerThread(other, slow_send, poll=0.02)]
    for poller in pollers:
        poller.start()
    try:
        deadline = time.monotonic() + 20
        while schedule.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)                               # nothing left pending: every send has returned
    finally:
        for poller in pollers:
            poller.stop()
        other.client.close()
    counts = _sent_counts(sent)
    assert len(counts) == 100 and max(counts.values()) == 1, \
        f"sends: {len(sent)} for 100 due entries; sends per due entry: max {max(counts.values())}"


def test_a_republish_while_the_entry_is_in_flight_is_sent_too(schedule: RedisSchedule) -> None:
    schedule.add("event:r", {"v": 1}, time.time() - 1)
    sending, release = threading.Event(), threading.Event()
    sent: list[int] = []

    def send(message: dict[str, int]) -> None:
        if message["v"] == 1:
            sending.set()
            release.wait(5)
        sent.append(message["v"])

    poller = SchedulerThread(schedule, send, poll=0.02)
    poller.start()
    try:
        assert sending.wait(5)
        schedule.add("event:r", {"v": 2}, time.time() - 1)   # published again while v1 is being sent
        release.set()
        deadline = time.monotonic() + 5
        while len(sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        poller.stop()
    assert sent == [1, 2], f"sent {sent}: the re-publish of an entry in flight was {'dropped' if sent == [1] else 'mangled'}"
    assert schedule.pending() == 0


def test_a_poller_stopping_mid_batch_gives_the_rest_back_and_sends_nothing_twice(
        redis_uri: str, schedule: RedisSchedule) -> None:
    """A warm shutdown while a slow broker takes a batch: the unsent entries go to another poller at
    once, the entry being sent keeps its lease, and no entry is sent twice."""
    schedule.lease = 1.5
    other = RedisSchedule(redis.Redis.from_url(redis_uri), schedule.keys, lease=1.5)
    for n in range(10):
        schedule.add(f"event:{n}", {"member": f"event:{n}"}, time.time() - 1)
    sent: list[str] = []
    lock = threading.Lock()

    def slow_send(message: dict[str, str]) -> None:
        time.sleep(0.2)                               # the whole batch would take 2 s
        with lock:
            sent.append(message["member"])

    stopping = SchedulerThread(schedule, slow_send, poll=0.02)
    stopping.start()
    time.sleep(0.3)                                   # it holds the batch and is sending
    stopper = threading.Thread(target=stopping.stop, kwargs={"timeout": 0.1})   # returns before the send ends
    stopper.start()
    survivor = SchedulerThread(other, slow_send, poll=0.02)
    survivor.start()
    try:
        deadline = time.monotonic() + 15
        while (schedule.pending() or len(sent) < 10) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2 * schedule.lease)                # any lapsed lease would be taken again by now
    finally:
        stopper.join()
        survivor.stop()
        other.client.close()
    counts = _sent_counts(sent)
    assert len(counts) == 10 and max(counts.values()) == 1, \
        f"sends: {len(sent)} for 10 entries; sent twice: {sorted(m for m, n in counts.items() if n > 1)}"
