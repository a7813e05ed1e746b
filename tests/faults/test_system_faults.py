"""Fault scenario 7 of issue 12: two relays and three workers at once. Prints ``lost=N duplicated=N``.

Writers hand half of their events to the broker at once and leave the other half to the outbox
(as a writer killed before its hand-off would); two ``ormevents relay`` processes race for those
while three workers (relay off) consume the queue. Every event must be handled exactly once:
the relays' leases and the sent marks keep them from publishing one event twice, the workers'
run leases and completion records keep a handler from running twice.

Short size in ``make test``; ``ORMEVENTS_FAULTS=full pytest tests/faults`` runs 5,000 events.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from contextlib import ExitStack
from typing import Any

import pytest

import ormevents
from tests.faults.fault_models import FaultNote
from tests.faults.helpers import (
    count,
    fault_worker,
    mongo_effects,
    published_twice,
    size,
    wait_until,
)
from tests.integration.worker_process import ROOT
from tests.support.servers import stop

pytestmark = pytest.mark.integration
DELIVERY_TIMEOUT = 120.0


def start_relay(redis_url: str, queue: str, mongo_url: str, database: str) -> subprocess.Popen[bytes]:
    """``ormevents relay`` on its own, as an operator would run it (grace 1 s)."""
    return subprocess.Popen([sys.executable, "-m", "ormevents", "--redis-url", redis_url, "--queue", queue, "relay",
                             "--mongo-url", mongo_url, "--database", database, "--grace", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_7_two_relays_and_three_workers_at_once(redis_uri: str, mongo_uri: str, sync_mongo: Any,
                                                      run_name: str) -> None:
    n = size(300, 5000)
    queue, database = f"{run_name}:events", run_name
    with ExitStack() as stack:
        workers = [stack.enter_context(fault_worker(queue, redis_uri, mongo_uri, database,
                                                    extra_env={"ORMEVENTS_RELAY": "off"}))
                   for _ in range(3)]
        relays = [start_relay(redis_uri, queue, mongo_uri, database) for _ in range(2)]
        for relay in relays:
            stack.callback(stop, relay)
        await ormevents.init(mongo_uri=mongo_uri, database=database, redis_uri=redis_uri,
                             event_config={"queue_name": queue})
        written: list[str] = []
        outbox = ormevents.get_runtime().publisher.outbox
        submit = outbox.submit

        def half_to_the_relays(records: list[Any]) -> None:
            submit(records[::2])  # the others stay pending in their documents, for the relays
            written.extend(record.id for record in records)

        outbox.submit = half_to_the_relays
        try:
            for i in range(n):
                await FaultNote.create(run=run_name, i=i)
        finally:
            outbox.submit = submit
            await ormevents.close()
        await wait_until(lambda: count(written, mongo_effects(sync_mongo, database, run_name)).lost == 0,
                         DELIVERY_TIMEOUT)
        await asyncio.sleep(3)  # any second copy would arrive now: the relays poll every second
        outcome = count(written, mongo_effects(sync_mongo, database, run_name))
        twice = published_twice(workers, written)
        alive = [relay.poll() is None for relay in relays]
    line = outcome.line("scenario 7 (2 relays, 3 workers)") + f" published_twice={len(twice)}"
    print(f"\n{line}")
    assert all(alive), f"a relay exited: {alive}"
    assert outcome.written == n and outcome.lost == 0 and outcome.duplicated == 0 and not twice, line
    sync_mongo.drop_database(database)
