"""What the worker counts for the dashboard: per-minute activity, per-handler totals (once per
run), heartbeats; and the value sets of failed-job facets."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis

from ormevents import Event
from ormevents.delivery.celery.heartbeat import Heartbeat
from ormevents.jobs import FailedJob
from ormevents.jobs.activity import read_activity, read_handler_totals, read_workers
from ormevents.jobs.keys import Keys
from ormevents.jobs.redis_store import FailedJobStore
from tests.integration.test_delivery import tag, wait_for
from tests.integration.test_failed_jobs import failed_switch

pytestmark = pytest.mark.integration


def last_minutes(client: redis.Redis, queue: str, name: str) -> int:
    # every minute since the module's queue was made: a window that slides during the test loses nothing
    return sum(m.counts.get(name, 0) for m in read_activity(client, Keys(queue), 30))


async def test_dispatches_unmatched_events_and_run_outcomes_are_counted(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    before = (last_minutes(ops_redis, ops_queue, "unmatched"), last_minutes(ops_redis, ops_queue, "dispatched"))
    totals = read_handler_totals(ops_redis, Keys(ops_queue)).get("t.switch", {"failed": 0, "retried": 0})
    await ops_bus.publish(Event(name="nobody.listens", data={}))
    await wait_for(lambda: last_minutes(ops_redis, ops_queue, "unmatched") == before[0] + 1)
    await failed_switch(ops_bus, ops_redis, ops_queue, tag(), name=f"act{uuid.uuid4().hex[:6]}.switch")
    after = read_handler_totals(ops_redis, Keys(ops_queue))["t.switch"]
    assert (after["failed"], after["retried"]) == (totals["failed"] + 1, totals["retried"] + 2)  # 3 attempts
    assert last_minutes(ops_redis, ops_queue, "dispatched") >= before[1] + 1
    assert last_minutes(ops_redis, ops_queue, "failed") >= 1
    workers = read_workers(ops_redis, Keys(ops_queue))
    assert any(w.alive and ops_queue in w.queues for w in workers)


def test_failed_job_value_sets_follow_the_records(ops_redis: redis.Redis, redis_uri: str) -> None:
    queue = f"values{uuid.uuid4().hex[:6]}:events"
    store = FailedJobStore(redis.Redis.from_url(redis_uri), queue)
    jobs = []
    for error in ("builtins.KeyError", "builtins.KeyError", "builtins.OSError"):
        event = Event(name="invoice.created", data={})
        job = FailedJob(id=FailedJob.make_id(str(event.id), "h"), queue=queue, handler="h", event=event.to_dict(),
                        event_id=str(event.id), event_name=event.name, model="invoice", error_type=error,
                        error_message="x", attempts=1)
        store.record(job)
        jobs.append(job)
    assert store.values("exception") == {"builtins.KeyError": 2, "builtins.OSError": 1}
    assert store.values("model") == {"invoice": 3} and store.values("handler") == {"h": 3}
    store.remove(jobs[2].id)
    assert store.values("exception") == {"builtins.KeyError": 2}
    assert not ops_redis.sismember(f"{queue}:failed:values:exception", "builtins.OSError")
    for job in jobs[:2]:
        store.remove(job.id)
    assert store.values("exception") == {} and store.values("model") == {}
    store.client.close()


def test_heartbeat_is_written_and_removed_on_stop(ops_redis: redis.Redis, redis_uri: str) -> None:
    keys = Keys(f"beat{uuid.uuid4().hex[:6]}:events")
    client = redis.Redis.from_url(redis_uri)
    beat = Heartbeat(client, keys, "w1@host", ["b", "a", "a"], every=0.05)
    beat.start()
    deadline = time.monotonic() + 5
    while not ops_redis.hexists(keys.workers, "w1@host"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    value = json.loads(ops_redis.hget(keys.workers, "w1@host") or "{}")
    assert value["queues"] == ["a", "b"] and value["seen"] >= value["started"]
    [seen] = read_workers(ops_redis, keys)
    assert seen.alive and seen.name == "w1@host" and seen.queues == ("a", "b")
    beat.stop()
    assert not ops_redis.hexists(keys.workers, "w1@host")
    ops_redis.hset(keys.workers, mapping={"old": json.dumps({"seen": time.time() - 3 * 86400}), "junk": "not json"})
    assert read_workers(ops_redis, keys) == [] and ops_redis.hlen(keys.workers) == 0  # forgotten when read
    client.close()
