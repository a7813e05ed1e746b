"""The run ledger's scripts on a real Redis: what each delivery of a run_handler message does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from ormevents.delivery.celery.run_ledger import RunLedger
from ormevents.jobs.keys import Keys

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_uri: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_uri, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def ledger(client: redis.Redis) -> Iterator[RunLedger]:
    keys = Keys(f"rl{uuid.uuid4().hex[:8]}:events")
    client.hset(keys.gauges, mapping={"queued|h": 3})
    yield RunLedger(client, keys, ttl=60)
    client.delete(*(client.keys(f"{keys.prefix}*") or [keys.stats]))


def gauges(client: redis.Redis, ledger: RunLedger) -> dict[str, int]:
    return {k: int(v) for k, v in client.hgetall(ledger.keys.gauges).items()}


def end(client: redis.Redis, ledger: RunLedger, run_id: str, stat: str, **moves: int) -> None:
    pipe = client.pipeline()
    ledger.end(pipe, run_id, "e1", "h", stat, **moves)
    pipe.execute()


def test_a_delivery_runs_once_a_lost_one_is_counted_and_an_ended_one_is_skipped(client: redis.Redis, ledger: RunLedger) -> None:
    assert ledger.begin("r1", "e1", "h", "queued") == ("run", 1)
    assert gauges(client, ledger) == {"queued|h": 2, "running|h": 1}
    assert ledger.begin("r1", "e1", "h", "queued") == ("lost", 2)       # the first one's process died
    end(client, ledger, "r1", "retried", running=-1, scheduled=1)
    end(client, ledger, "r1", "retried", running=-1, scheduled=1)               # a redelivered outcome: moves nothing
    assert gauges(client, ledger) == {"queued|h": 2, "running|h": 0, "scheduled|h": 1}
    assert ledger.begin("r1", "e1", "h", "queued")[0] == "finished"
    assert ledger.begin("r2", "e1", "h", "queued") == ("run", 1)         # another message: its own count


def test_a_completed_handler_skips_other_messages_and_keeps_the_gauges_level(client: redis.Redis, ledger: RunLedger) -> None:
    client.hset(ledger.keys.done("e1"), "h", '"ok"')
    assert ledger.begin("r3", "e1", "h", "queued") == ("done", 1)        # never started: leaves queued
    assert gauges(client, ledger) == {"queued|h": 2}


def test_an_abandoned_start_runs_again_unless_its_outcome_was_recorded(client: redis.Redis, ledger: RunLedger) -> None:
    assert ledger.begin("r4", "e1", "h", "queued") == ("run", 1)
    assert ledger.abandon("r4", "e1", "h", "queued") is True              # Redis failed under the bookkeeping
    assert gauges(client, ledger) == {"queued|h": 3, "running|h": 0}
    assert ledger.begin("r4", "e1", "h", "queued") == ("run", 1)         # runs again, not "lost"
    end(client, ledger, "r4", "succeeded", running=-1)
    assert ledger.abandon("r4", "e1", "h", "queued") is False             # the outcome made it after all
    assert gauges(client, ledger) == {"queued|h": 2, "running|h": 0}
