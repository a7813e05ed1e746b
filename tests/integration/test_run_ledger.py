"""The run ledger's scripts on a real Redis: what each delivery of a run_handler message does, who
holds a run's lease, what a completion records and when it is fenced."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from ormevents.delivery.celery.leases import LeaseKeeper
from ormevents.delivery.celery.run_ledger import RunLedger
from ormevents.jobs.keys import Keys

pytestmark = pytest.mark.integration

RUNNING = {"h|h|state": '"running"'}


@pytest.fixture
def client(redis_uri: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_uri, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def ledger(client: redis.Redis) -> Iterator[RunLedger]:
    keys = Keys(f"rl{uuid.uuid4().hex[:8]}:events")
    client.hset(keys.gauges, mapping={"queued|h": 3})
    yield RunLedger(client, keys, ttl=60, lease=30.0)
    client.delete(*(client.keys(f"{keys.prefix}*") or [keys.stats]))


def gauges(client: redis.Redis, ledger: RunLedger) -> dict[str, int]:
    return {k: int(v) for k, v in client.hgetall(ledger.keys.gauges).items()}


def begin(ledger: RunLedger, run_id: str, token: str, takeover: str = "") -> tuple[str, int]:
    found = ledger.begin(run_id, "e1", "h", "queued", token, 60, RUNNING, takeover=takeover)
    return found.state, found.starts


def end(client: redis.Redis, ledger: RunLedger, run_id: str, stat: str, token: str = "", **moves: int) -> None:
    pipe = client.pipeline()
    ledger.end(pipe, run_id, "e1", "h", stat, token, **moves)
    pipe.execute()


def complete(ledger: RunLedger, run_id: str, token: str, result: str = '"ok"') -> tuple[str, str]:
    return ledger.complete(run_id, "e1", "h", token, result, 60, {"h|h|state": '"succeeded"'}, [])


def test_a_delivery_runs_once_a_lost_one_is_counted_and_an_ended_one_is_skipped(client: redis.Redis, ledger: RunLedger) -> None:
    assert begin(ledger, "r1", "t1") == ("run", 1)
    assert gauges(client, ledger) == {"queued|h": 2, "running|h": 1}
    assert client.hget(ledger.keys.status("e1"), "h|h|state") == '"running"'
    assert begin(ledger, "r1", "t2", takeover="t1") == ("lost", 2)       # the first one's process died
    end(client, ledger, "r1", "retried", "t2", running=-1, scheduled=1)
    end(client, ledger, "r1", "retried", "t2", running=-1, scheduled=1)  # a redelivered outcome: moves nothing
    assert gauges(client, ledger) == {"queued|h": 2, "running|h": 0, "scheduled|h": 1}
    assert not client.exists(ledger.keys.lease("e1", "h"))               # the outcome released the lease
    assert begin(ledger, "r1", "t3")[0] == "finished"
    assert begin(ledger, "r2", "t4") == ("run", 1)                       # another message: its own count


def test_a_completed_handler_skips_other_messages_and_keeps_the_gauges_level(client: redis.Redis, ledger: RunLedger) -> None:
    client.hset(ledger.keys.done("e1"), "h", '"ok"')
    assert begin(ledger, "r3", "t1") == ("done", 0)                      # never started: leaves queued
    assert gauges(client, ledger) == {"queued|h": 2}


def test_an_abandoned_start_runs_again_unless_its_outcome_was_recorded(client: redis.Redis, ledger: RunLedger) -> None:
    assert begin(ledger, "r4", "t1") == ("run", 1)
    assert ledger.abandon("r4", "e1", "h", "queued", "t1") is True       # Redis failed under the bookkeeping
    assert gauges(client, ledger) == {"queued|h": 3, "running|h": 0}
    assert not client.exists(ledger.keys.lease("e1", "h"))
    assert begin(ledger, "r4", "t2") == ("run", 1)                       # runs again, not "lost"
    end(client, ledger, "r4", "succeeded", "t2", running=-1)
    assert ledger.abandon("r4", "e1", "h", "queued") is False             # the outcome made it after all
    assert gauges(client, ledger) == {"queued|h": 2, "running|h": 0}


def test_a_run_in_progress_makes_any_other_delivery_wait_for_its_lease(client: redis.Redis, ledger: RunLedger) -> None:
    assert begin(ledger, "r5", "t1") == ("run", 1)
    copy = ledger.begin("r5", "e1", "h", "queued", "t2", 60, RUNNING)     # kombu handed it out again
    other = ledger.begin("r6", "e1", "h", "queued", "t3", 60, RUNNING)    # a duplicate event's message
    assert (copy.state, copy.holder, other.state, other.holder) == ("busy", "t1", "busy", "t1"), (copy, other)
    assert 29_000 < copy.pttl_ms <= 30_000
    assert client.hget(ledger.keys.runs("e1"), "r5") == "1"               # a busy delivery is not a start
    assert gauges(client, ledger) == {"queued|h": 2, "running|h": 1}
    assert complete(ledger, "r5", "t1") == ("ok", "")
    assert begin(ledger, "r5", "t2")[0] == "finished" and begin(ledger, "r6", "t3")[0] == "done"
    assert gauges(client, ledger) == {"queued|h": 1, "running|h": 0}     # r6 left queued, never ran


def test_a_completion_after_the_lease_was_taken_over_is_fenced(client: redis.Redis, ledger: RunLedger) -> None:
    """The memo's fencing check: A holds the lease, B is refused; B completing anyway is fenced;
    A then finds it already completed; a later delivery is done; no lease key is left."""
    assert begin(ledger, "rA", "tA") == ("run", 1)
    assert begin(ledger, "rB", "tB")[0] == "busy"
    assert complete(ledger, "rB", "tB", '"from B"') == ("fenced", "tA")
    assert complete(ledger, "rA", "tA", '"from A"') == ("already", "")
    assert begin(ledger, "rC", "tC")[0] == "done"
    assert client.hget(ledger.keys.done("e1"), "h") == '"from B"' and not client.exists(ledger.keys.lease("e1", "h"))
    stats = client.hgetall(ledger.keys.stats)
    assert (stats["fenced"], stats["succeeded"]) == ("2", "2"), stats


def test_a_lapsed_lease_nobody_took_completes_late_and_renewal_notices_a_takeover(client: redis.Redis, ledger: RunLedger) -> None:
    short = RunLedger(client, ledger.keys, ttl=60, lease=0.05)
    assert short.begin("r7", "e1", "h", "queued", "t1", 60, RUNNING).state == "run"
    client.delete(ledger.keys.lease("e1", "h"))                           # expired: the holder was paused
    keeper = LeaseKeeper(short.renew, lease=0.05)
    with keeper.hold(ledger.keys.lease("e1", "h"), "t1") as held:
        assert keeper.tick(now=held.renew_at) == 0 and held.lost        # its token is gone: lost
    assert complete(ledger, "r7", "t1") == ("ok-late", "")
    assert short.begin("r8", "e1", "h", "queued", "t2", 60, RUNNING).state == "done"


def test_renewal_extends_only_the_leases_still_held(client: redis.Redis, ledger: RunLedger) -> None:
    assert begin(ledger, "r9", "t1") == ("run", 1)
    key = ledger.keys.lease("e1", "h")
    client.pexpire(key, 1000)
    assert ledger.renew([(key, "t1"), (key, "someone else")]) == [True, False]
    assert client.pttl(key) > 29_000


def test_dispatch_queues_each_run_once_and_lists_what_is_not_done(client: redis.Redis, ledger: RunLedger) -> None:
    queued = {name: {f"h|{name}|state": '"queued"'} for name in ("h", "g", "f")}
    client.hset(ledger.keys.done("e1"), "f", "null")
    first = ledger.dispatch(json.dumps({"id": "e1"}), "e1", queued, 60)
    again = ledger.dispatch(json.dumps({"id": "e1"}), "e1", queued, 60)   # the relay published it twice
    assert first == again == ["h", "g"], (first, again)
    assert gauges(client, ledger) == {"queued|h": 4, "queued|g": 1}       # counted once: the copies are one message
    stats = client.hgetall(ledger.keys.stats)
    assert (stats.get("dispatched"), stats.get("duplicates")) == ("1", "1"), stats


def test_a_redelivered_dispatch_leaves_out_a_run_that_recorded_an_outcome(client: redis.Redis, ledger: RunLedger) -> None:
    queued = {name: {f"h|{name}|state": '"queued"'} for name in ("h", "g")}
    assert ledger.dispatch(json.dumps({"id": "e1"}), "e1", queued, 60) == ["h", "g"]
    end(client, ledger, "h@0", "failed", queued=-1)  # parked (a condition that raised) or failed for good
    assert ledger.dispatch(json.dumps({"id": "e1"}), "e1", queued, 60) == ["g"]   # not parked or sent again
    names, begun = ledger.dispatch_and_begin(json.dumps({"id": "e1"}), "e1", queued, 60, "h", "t1", RUNNING)
    assert (names, begun) == (["g"], None)


def test_dispatch_and_begin_is_dispatch_then_begin_in_one_round_trip(client: redis.Redis, ledger: RunLedger) -> None:
    queued = {name: {f"h|{name}|state": '"queued"'} for name in ("h", "g")}
    names, begun = ledger.dispatch_and_begin(json.dumps({"id": "e1"}), "e1", queued, 60, "h", "t1", RUNNING)
    assert names == ["h", "g"] and begun is not None and (begun.state, begun.starts) == ("run", 1)
    assert gauges(client, ledger) == {"queued|h": 3, "queued|g": 1, "running|h": 1}   # queued, then running
    assert client.get(ledger.keys.lease("e1", "h")) == "t1"
    assert client.hget(ledger.keys.status("e1"), "h|h|state") == '"running"'
    names, begun = ledger.dispatch_and_begin(json.dumps({"id": "e1"}), "e1", queued, 60, "h", "t2", RUNNING)
    assert begun is not None and begun.state == "busy" and begun.holder == "t1"   # a redelivered dispatch waits
    assert complete(ledger, "h@0", "t1") == ("ok", "")
    names, begun = ledger.dispatch_and_begin(json.dumps({"id": "e1"}), "e1", queued, 60, "h", "t3", RUNNING)
    assert (names, begun) == (["g"], None)                                  # h completed: nothing begins
    assert gauges(client, ledger) == {"queued|h": 3, "queued|g": 1, "running|h": 0}
