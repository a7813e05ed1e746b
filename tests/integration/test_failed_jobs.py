"""Failed jobs and event status through the bus, with a real worker (shared, see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
import redis

from ormevents import Event, JobNotFoundError
from tests.integration.test_delivery import records, stats, tag, wait_for

pytestmark = pytest.mark.integration


async def failed_switch(bus: Any, rdb: redis.Redis, queue: str, t: str, name: str = "job.switch") -> Event:
    event = Event(name=name, data={"tag": t})
    await bus.publish(event)
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", f"{event.id}:t.switch"))
    return event


async def test_failing_handler_lands_in_the_store_with_the_right_record(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    t = tag()
    event = await failed_switch(ops_bus, ops_redis, ops_queue, t)
    job = await ops_bus.get_failed_job(f"{event.id}:t.switch")
    assert len(records(ops_redis, ops_queue, "t.switch", t)) == 3 == job.attempts  # 1 + max_retries=2
    assert (job.handler, job.event_name, job.model, job.error_type) == ("t.switch", "job.switch", "job", "builtins.RuntimeError")
    assert job.error_message == "switch is off (call 3)" and "RuntimeError: switch is off" in job.traceback
    assert Event.from_dict(job.event) == event and job.event_id == str(event.id) and job.queue == ops_queue
    assert job.first_attempt_at is not None and job.first_failed_at is not None
    assert job.first_attempt_at <= job.first_failed_at < job.failed_at
    assert job.worker.startswith(socket.gethostname() + ":")
    status = await ops_bus.get_handler_status(event.id, "t.switch")
    assert (status.state, status.attempts) == ("failed", 3)
    assert status.last_error == "builtins.RuntimeError: switch is off (call 3)"


async def test_retry_one_runs_again_and_clears_the_record(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    t = tag()
    event = await failed_switch(ops_bus, ops_redis, ops_queue, t)
    job_id = f"{event.id}:t.switch"
    ops_redis.set(f"{ops_queue}:switch:{t}", 1)
    # (a completion recorded meanwhile would make the retried run skip the handler instead, see
    # test_delivery_exactly_once.py: a retry never applies an effect twice)
    retried = await ops_bus.retry_job(job_id)
    assert retried.id == job_id
    await wait_for(lambda: len(records(ops_redis, ops_queue, "t.switch", t)) == 4)
    await wait_for(lambda: json.loads(ops_redis.hget(f"{ops_queue}:done:{event.id}", "t.switch") or "0") == "switched")
    with pytest.raises(JobNotFoundError):
        await ops_bus.get_failed_job(job_id)
    status = await ops_bus.get_handler_status(event.id, "t.switch")
    assert (status.state, status.attempts, status.result) == ("succeeded", 1, "switched")  # fresh attempt count


async def test_retry_all_matching_dry_run_first(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    t, other = tag(), tag()
    names = [f"a{t}.switch", f"a{t}.switch", f"b{t}.switch"]  # models a<t> (2 jobs) and b<t>
    events = [await failed_switch(ops_bus, ops_redis, ops_queue, t, name) for name in names]
    bystander = await failed_switch(ops_bus, ops_redis, ops_queue, other, "other.switch")
    ops_redis.set(f"{ops_queue}:switch:{t}", 1)
    ops_redis.set(f"{ops_queue}:switch:{other}", 1)
    before = ops_redis.hgetall(f"{ops_queue}:failed:jobs")
    assert await ops_bus.retry_jobs(handler="t.switch", model=f"a{t}", dry_run=True) == 2
    assert await ops_bus.retry_jobs(event_name=f"b{t}.switch", dry_run=True) == 1
    await asyncio.sleep(0.3)
    assert ops_redis.hgetall(f"{ops_queue}:failed:jobs") == before  # dry run changed nothing
    assert len(records(ops_redis, ops_queue, "t.switch", t)) == 9
    assert await ops_bus.retry_jobs(handler="t.switch", model=f"a{t}") == 2
    await wait_for(lambda: len(records(ops_redis, ops_queue, "t.switch", t)) == 11)
    ids = [f"{e.id}:t.switch" for e in events]
    await wait_for(lambda: not set(ids[:2]) & set(ops_redis.hkeys(f"{ops_queue}:failed:jobs")))
    assert await ops_bus.count_failed(model=f"a{t}") == 0 and await ops_bus.count_failed(model=f"b{t}") == 1
    assert await ops_bus.get_failed_job(f"{bystander.id}:t.switch")  # not matched, untouched


async def test_remove_one_and_matching_and_unknown_ids(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    t = tag()
    first = await failed_switch(ops_bus, ops_redis, ops_queue, t, "gone.switch")
    second = await failed_switch(ops_bus, ops_redis, ops_queue, t, "gone.switch")
    await ops_bus.remove_job(f"{first.id}:t.switch")
    assert await ops_bus.count_failed(event_name="gone.switch") == 1
    assert await ops_bus.remove_jobs(event_name="gone.switch", dry_run=True) == 1
    assert await ops_bus.remove_jobs(event_name="gone.switch") == 1
    assert await ops_bus.count_failed(event_name="gone.switch") == 0
    for call in (ops_bus.get_failed_job, ops_bus.retry_job, ops_bus.remove_job):
        with pytest.raises(JobNotFoundError, match="no failed job"):
            await call(f"{second.id}:t.switch")
    assert await ops_bus.get_event_status("00000000-0000-0000-0000-000000000000") is None


async def test_event_status_through_every_state(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    t = tag()
    blocker = Event(name="status.block", data={"tag": t, "sleep": 2.0})
    await ops_bus.publish(blocker)  # keeps one of the two worker processes busy
    await wait_for(lambda: records(ops_redis, ops_queue, "t.status_block", t))
    ok = Event(name="status.check", data={"tag": t, "fail_times": 1})
    await ops_bus.publish(ok, delay=0.3)
    scheduled = await ops_bus.get_event_status(ok.id)
    assert (scheduled.state, scheduled.handlers, scheduled.event) == ("scheduled", {}, ok)
    assert scheduled.due_at is not None
    seen: dict[str, list[str]] = {"t.status_work": [], "t.status_later": []}

    async def done() -> bool:
        status = await ops_bus.get_event_status(ok.id)
        for name, handler in (status.handlers if status else {}).items():
            if not seen[name] or seen[name][-1] != handler.state:
                seen[name].append(handler.state)
        return bool(status and all(h.state == "succeeded" for h in status.handlers.values()) and len(status.handlers) == 2)

    for _ in range(400):
        if await done():
            break
        await asyncio.sleep(0.01)
    # the dispatch begins its first run in the script that queues it: "queued" may never be seen
    assert seen["t.status_work"] in (["queued", "running", "retrying", "running", "succeeded"],
                                     ["running", "retrying", "running", "succeeded"]), seen
    assert seen["t.status_later"][0] == "queued" and seen["t.status_later"][-1] == "succeeded", seen
    final = await ops_bus.get_event_status(ok.id)
    work = final.handlers["t.status_work"]
    assert (final.state, work.attempts, work.result) == ("dispatched", 2, {"ok": 2})
    assert work.queued_at <= work.started_at <= work.finished_at
    failing = Event(name="status.check", data={"tag": tag(), "fail_times": 9})
    await ops_bus.publish(failing)
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:failed:jobs", f"{failing.id}:t.status_work"), timeout=10)
    failed = await ops_bus.get_handler_status(failing.id, "t.status_work")
    assert (failed.state, failed.attempts) == ("failed", 3) and "status work failed" in failed.last_error
    ttl = ops_redis.ttl(f"{ops_queue}:status:{failing.id}")
    assert 7 * 86400 - 60 < ttl <= 7 * 86400


async def test_retention_from_event_config_reaches_the_worker(
        ops_worker: Any, ops_redis: redis.Redis, ops_queue: str, redis_uri: str, mongo_uri: str) -> None:
    import ormevents
    from ormevents import event_bus

    await ormevents.init(mongo_uri=mongo_uri, database="ops_tests", redis_uri=redis_uri,
                         event_config={"queue_name": ops_queue, "failed_jobs": {"max_count": 2}, "status_ttl": 60})
    try:
        evicted_before = int(ops_redis.hget(f"{ops_queue}:stats", "failed_evicted") or 0)
        total_before = await event_bus.count_failed()
        t = tag()
        events = [Event(name="job.fatal", data={"tag": t, "n": n}) for n in range(4)]
        for event in events:
            await event_bus.publish(event)
            await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:failed:jobs", f"{event.id}:t.fatal"))
        assert await event_bus.count_failed() == 2
        assert [j.event_id for j in (await event_bus.get_failed_jobs()).items] == [str(events[3].id), str(events[2].id)]
        evicted = int(ops_redis.hget(f"{ops_queue}:stats", "failed_evicted") or 0) - evicted_before
        assert evicted == total_before + 2
        assert 0 < ops_redis.ttl(f"{ops_queue}:status:{events[0].id}") <= 60
    finally:
        await ormevents.close()


async def test_a_page_of_failed_jobs_iterates_like_a_sequence(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    t = tag()
    name = f"p{t}.switch"
    events = [await failed_switch(ops_bus, ops_redis, ops_queue, t, name) for _ in range(3)]
    page = await ops_bus.get_failed_jobs(event_name=name, limit=2)
    try:
        seen = [job.id for job in page]
    except TypeError as exc:
        raise AssertionError(f"for job in page: {exc}") from None
    assert seen == [f"{e.id}:t.switch" for e in reversed(events)][:2] and len(page) == 2, \
        f"iterated {len(seen)} job(s), len(page) = {len(page)}"
    rest = await ops_bus.get_failed_jobs(event_name=name, limit=2, cursor=page.next_cursor)
    assert [job.id for job in rest] == [f"{events[0].id}:t.switch"] and rest.next_cursor is None


async def test_the_failed_job_records_the_policy_the_worker_applied(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    event = Event(name="once.fails", data={"tag": tag()})
    await ops_bus.publish(event)                     # carries the publisher's default: max_retries=3
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:failed:jobs", f"{event.id}:t.no_retry"))
    job = await ops_bus.get_failed_job(f"{event.id}:t.no_retry")
    recorded = (job.retry_policy or {}).get("max_retries")
    assert job.attempts == 1 and recorded == 0, \
        f"retry_policy recorded max_retries={recorded} after {job.attempts} attempt(s) (the handler's policy: 0)"


async def test_two_operators_retrying_one_job_at_once_run_it_once(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str, redis_uri: str) -> None:
    from ormevents import errors
    from ormevents.ops.cli.plumbing import Connection

    t = tag()
    event = Event(name="status.check", data={"tag": t, "fail_times": 3})   # fails 3 times, then works (0.4 s)
    await ops_bus.publish(event)
    job_id = f"{event.id}:t.status_work"
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:failed:jobs", job_id), timeout=15)
    operators = [Connection(redis_uri, ops_queue, None) for _ in range(2)]   # as two `ormevents` commands
    results = await asyncio.gather(*(ops_bus.retry_job(job_id) for _ in range(4)),
                                   *(asyncio.to_thread(op.requeue.retry, job_id) for op in operators),
                                   return_exceptions=True)
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:done:{event.id}", "t.status_work"))
    await asyncio.sleep(1.5)                       # a second run would have finished by now
    runs = len(records(ops_redis, ops_queue, "t.status_work", t)) - 3
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert runs == 1 and len(accepted) == 1, \
        f"handler runs after 6 concurrent retries of one job: {runs}; retries accepted: {len(accepted)}"
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, errors.JobAlreadyRetriedError) and "already retried" in str(r) for r in refused), refused
    with pytest.raises(errors.JobAlreadyRetriedError, match="already retried"):
        await ops_bus.retry_job(job_id)            # later too: a clear answer, not "no such job"


async def test_a_retry_the_broker_refuses_keeps_the_job_and_frees_it_for_the_next_retry(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str, redis_uri: str) -> None:
    from ormevents.errors import BrokerUnavailableError
    from ormevents.ops.cli.plumbing import Connection

    t = tag()
    event = await failed_switch(ops_bus, ops_redis, ops_queue, t)
    job_id = f"{event.id}:t.switch"
    down = Connection(redis_uri, ops_queue, "redis://127.0.0.1:9/0")   # the broker is unreachable
    with pytest.raises(BrokerUnavailableError):
        await asyncio.to_thread(down.requeue.retry, job_id)
    assert (await ops_bus.get_failed_job(job_id)).attempts == 3        # still stored, still failed
    assert (await ops_bus.get_handler_status(event.id, "t.switch")).state == "failed"
    ops_redis.set(f"{ops_queue}:switch:{t}", 1)
    await ops_bus.retry_job(job_id)                                    # not "already retried": the claim was freed
    await wait_for(lambda: json.loads(ops_redis.hget(f"{ops_queue}:done:{event.id}", "t.switch") or "0") == "switched")


async def test_a_condition_that_raises_parks_its_job_and_a_retry_evaluates_it_again(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    bus, rdb, queue = ops_bus, ops_redis, ops_queue
    t = tag()
    before = stats(rdb, queue)
    event = Event(name="cond.updated", data={"tag": t, "go": True}, changes={"go": [False, True]})
    await bus.publish(event)
    await wait_for(lambda: records(rdb, queue, "t.cond_plain", t))  # the other handler ran
    fixable = await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", f"{event.id}:t.cond_fixable")) and \
        await bus.get_failed_job(f"{event.id}:t.cond_fixable")
    incomplete = await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", f"{event.id}:t.cond_incomplete")) and \
        await bus.get_failed_job(f"{event.id}:t.cond_incomplete")
    assert (fixable.reason, fixable.attempts, fixable.error_type) == ("condition_error", 0, "builtins.LookupError")
    assert "a bug in this condition" in fixable.error_message and "retry this job" in fixable.error_message
    assert "LookupError" in fixable.traceback and fixable.event["id"] == str(event.id)
    assert (incomplete.reason, incomplete.error_type) == ("condition_error", "ormevents.errors.IncompleteEventError")
    assert "does not carry 'status'" in incomplete.error_message
    await wait_for(lambda: rdb.hget(f"{queue}:status:{event.id}", "h|t.cond_plain|state") == '"succeeded"')
    status = await bus.get_event_status(event.id)  # (a handler records before it returns: its completion follows)
    assert {name: h.state for name, h in status.handlers.items()} == {
        "t.cond_plain": "succeeded", "t.cond_fixable": "failed", "t.cond_incomplete": "failed"}
    assert stats(rdb, queue).get("condition_error", 0) == before.get("condition_error", 0) + 2

    await bus.retry_job(fixable.id)  # not fixed yet: the retried run evaluates it, and parks the job again
    await wait_for(lambda: stats(rdb, queue).get("condition_error", 0) == before.get("condition_error", 0) + 3)
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", fixable.id))
    nogo = Event(name="cond.updated", data={"tag": t, "go": False}, changes={"go": [True, False]})
    await bus.publish(nogo)
    await wait_for(lambda: rdb.hexists(f"{queue}:failed:jobs", f"{nogo.id}:t.cond_fixable"))
    rdb.set(f"{queue}:fixed", 1)  # the deploy that fixes the condition
    try:
        await bus.retry_job(fixable.id)
        await bus.retry_job(f"{nogo.id}:t.cond_fixable")  # the fixed condition is false on this one: not run
        ran = await wait_for(lambda: records(rdb, queue, "t.cond_fixable", t))
        await wait_for(lambda: not rdb.hexists(f"{queue}:failed:jobs", fixable.id))
        await wait_for(lambda: not rdb.hexists(f"{queue}:failed:jobs", f"{nogo.id}:t.cond_fixable"))
        await asyncio.sleep(0.3)
    finally:
        rdb.delete(f"{queue}:fixed")
    assert [r["event_id"] for r in records(rdb, queue, "t.cond_fixable", t)] == [str(event.id)]
    assert "t.cond_fixable" not in (await bus.get_event_status(nogo.id)).handlers  # the run was dropped as unwanted
    assert [r["event_id"] for r in ran] == [str(event.id)]
    assert records(rdb, queue, "t.cond_incomplete", t) == [] and len(records(rdb, queue, "t.cond_plain", t)) == 2
    await wait_for(lambda: rdb.hget(f"{queue}:status:{event.id}", "h|t.cond_fixable|state") == '"succeeded"')


async def test_a_duplicate_dispatch_does_not_park_a_broken_condition_twice(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str) -> None:
    import ormevents
    from ormevents.delivery.celery.sending import dispatch_message

    t = tag()
    before = stats(ops_redis, ops_queue)
    event = Event(name="cond.updated", data={"tag": t, "go": True}, changes={"go": [False, True]})
    await ops_bus.publish(event)
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:failed:jobs", f"{event.id}:t.cond_incomplete"))
    await ops_bus.remove_job(f"{event.id}:t.cond_incomplete")  # the operator dealt with it
    sender = ormevents.get_runtime().publisher.sender
    await asyncio.to_thread(sender.send, dispatch_message(event.to_dict(), None))  # the relay re-published it
    await wait_for(lambda: stats(ops_redis, ops_queue).get("duplicates", 0) > before.get("duplicates", 0))
    await asyncio.sleep(0.3)
    assert stats(ops_redis, ops_queue).get("condition_error", 0) == before.get("condition_error", 0) + 2
    assert not ops_redis.hexists(f"{ops_queue}:failed:jobs", f"{event.id}:t.cond_incomplete")  # not parked again
    assert len(records(ops_redis, ops_queue, "t.cond_plain", t)) == 1
