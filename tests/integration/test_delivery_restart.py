"""Delayed delivery across worker restarts, short visibility timeouts and several workers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from ormevents import Event
from ormevents.jobs.keys import Keys
from tests.integration.worker_process import WorkerProcess
from tests.support.timing import LATE_SLACK

pytestmark = pytest.mark.integration

SHORT_VISIBILITY = {"ORMEVENTS_VISIBILITY_TIMEOUT": "2"}


@pytest.fixture(scope="module")
def queue() -> str:
    return f"r{uuid.uuid4().hex[:8]}:events"


def runs(rdb: redis.Redis, queue: str, tag: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in rdb.lrange(f"{queue}:rec:t.reminder:{tag}", 0, -1)]


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its direct children (the pool processes)."""
    total = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for p in [pid, *map(int, children)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


async def test_delayed_events_run_once_across_restart_with_short_visibility_timeout(
    bus: Any, rdb: redis.Redis, queue: str, redis_uri: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    first = WorkerProcess(queue, redis_uri, extra_env=SHORT_VISIBILITY)
    second = WorkerProcess(queue, redis_uri, extra_env=SHORT_VISIBILITY)
    try:
        first.start()
        start = time.time()
        await bus.publish(Event(name="reminder.due", data={"tag": tag, "kind": "restart"}), delay=10)
        await bus.publish(Event(name="reminder.due", data={"tag": tag, "kind": "long"}), delay=11)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(first.stop)          # worker gone in the middle of the delays
        assert runs(rdb, queue, tag) == []
        # each pool process ran the start hook once and the stop hook at shutdown
        assert (rdb.get(f"{queue}:hooks:started"), rdb.get(f"{queue}:hooks:stopped")) == ("2", "2")
        await asyncio.to_thread(second.start)
        back = time.time() - start                   # a warm shutdown + start take ~3 s (7 s on a loaded machine)
        deadline = start + 11 + 2 * 2 + 1             # past both delays and two visibility windows
        while time.time() < deadline:
            await asyncio.sleep(0.2)
        done = {r["data"]["kind"]: r["t"] - start for r in runs(rdb, queue, tag)}
        assert len(runs(rdb, queue, tag)) == 2, runs(rdb, queue, tag)
        print(f"\nworker back at +{back:.2f} s; delayed events ran at {done}")
        assert back < 10.0, "the replacement worker must be up before the first event is due"
        assert 10.0 <= done["restart"] <= 10.0 + LATE_SLACK, (done, back)
        assert 11.0 <= done["long"] <= 11.0 + LATE_SLACK, (done, back)
    finally:
        first.cleanup()
        second.cleanup()


async def test_two_workers_never_duplicate_and_100k_pending_stay_in_redis(
    bus: Any, rdb: redis.Redis, queue: str, redis_uri: str
) -> None:
    workers = [WorkerProcess(queue, redis_uri, extra_env=SHORT_VISIBILITY) for _ in range(2)]
    keys = Keys(queue)
    try:
        for worker in workers:
            await asyncio.to_thread(worker.start)
        tag = uuid.uuid4().hex[:8]
        events = [Event(name="reminder.due", data={"tag": tag, "n": n}) for n in range(40)]
        for n, event in enumerate(events):
            await bus.publish(event, delay=0.5 + n * 0.02)
        deadline = time.monotonic() + 10
        while len(runs(rdb, queue, tag)) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert sorted(r["data"]["n"] for r in runs(rdb, queue, tag)) == list(range(40))

        before = sum(rss_kib(w.main_pid()) for w in workers)
        far = time.time() + 7 * 24 * 3600
        pipe = rdb.pipeline(transaction=False)
        for n in range(100_000):
            member = f"event:{uuid.uuid4()}"
            pipe.hset(keys.payloads, member, json.dumps({"task": "ormevents.dispatch", "args": [], "id": member}))
            pipe.zadd(keys.schedule, {member: far + n})
            if n % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        await asyncio.sleep(3)
        after = sum(rss_kib(w.main_pid()) for w in workers)
        print(f"\n100k pending delayed events: worker RSS {before} KiB -> {after} KiB")
        assert rdb.zcard(keys.schedule) == 100_000
        assert after - before < 8 * 1024, (before, after)
    finally:
        rdb.delete(keys.schedule, keys.inflight, keys.payloads, keys.inflight_claims)
        await asyncio.gather(*(asyncio.to_thread(worker.cleanup) for worker in workers))
