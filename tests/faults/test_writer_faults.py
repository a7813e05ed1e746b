"""Fault scenarios of the write side (issue 12): 1, 3 and 5. Each prints ``lost=N duplicated=N``.

1. Redis (the broker) stopped during the writes and restarted: every write succeeds, every event
   is handled once (the outbox keeps them, the relay delivers them).
3. The writing process SIGKILLed between its database write and the hand-off: the relay delivers.
   Also the same process killed at a random moment during real hand-offs: every acknowledged
   write is handled once.
5. MongoDB restarted during the writes: each write either succeeds or raises a typed ormevents
   error with the driver's error chained; every acknowledged write has exactly one event handled.

Short sizes in ``make test``; ``ORMEVENTS_FAULTS=full pytest tests/faults`` runs 1,000 writes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pymongo
import pytest
import redis

import ormevents
from ormevents import DatabaseUnavailableError, OrmEventsError
from ormevents.testing import capture_events
from tests.faults.fault_models import FaultNote
from tests.faults.helpers import (
    RestartableMongo,
    RestartableRedis,
    count,
    duplicated_ids,
    fault_worker,
    mongo_effects,
    published_twice,
    whereabouts,
    redis_effects,
    size,
    wait_until,
    worker_lines,
)
from tests.integration.worker_process import ROOT

pytestmark = pytest.mark.integration
DELIVERY_TIMEOUT = 90.0


async def test_1_redis_stopped_during_writes_and_restarted(
        fault_redis: RestartableRedis, mongo_uri: str, sync_mongo: Any, run_name: str) -> None:
    n = size(300, 1000)
    queue, database = f"{run_name}:events", run_name
    with fault_worker(queue, fault_redis.url, mongo_uri, database) as worker:
        await ormevents.init(mongo_uri=mongo_uri, database=database, redis_uri=fault_redis.url,
                             event_config={"queue_name": queue, "publish_retry": {"max_retries": 0, "timeout": 0.5}})
        failures: list[str] = []
        started = time.monotonic()
        try:
            with capture_events() as captured:
                for i in range(n):
                    if i == n // 3:
                        await asyncio.to_thread(fault_redis.stop)
                    if i == 2 * n // 3:
                        await asyncio.to_thread(fault_redis.start)
                    try:
                        await FaultNote.create(run=run_name, i=i)
                    except Exception as error:  # the scenario's claim: none
                        failures.append(repr(error))
            await ormevents.flush()
        finally:
            await ormevents.close()
        wrote = time.monotonic() - started
        ids = [str(e.id) for e in captured.events]
        await wait_until(lambda: count(ids, mongo_effects(sync_mongo, database, run_name)).lost == 0, DELIVERY_TIMEOUT,
                         worker=worker)
        outcome = count(ids, mongo_effects(sync_mongo, database, run_name))
        twice = published_twice(worker, ids)
        effects = mongo_effects(sync_mongo, database, run_name)
        where = whereabouts([i for i in ids if not effects.get(i)], redis.Redis.from_url(fault_redis.url), queue)
        runs = worker_lines(worker, duplicated_ids(effects))
        if where and os.environ.get("FAULT_LOG"):
            Path(os.environ["FAULT_LOG"]).write_text(worker.log() + "\n" + repr(where))
    lost_where = {kind: len(found) for kind, found in where.items()}
    print(outcome.line(f"scenario 1, Redis stopped for writes {n // 3}-{2 * n // 3} of {n}") +
          f" published_twice={len(twice)} failed_writes={len(failures)} lost_where={lost_where} "
          f"worker_restarts={worker.restarts} (writes took {wrote:.1f} s)")
    if outcome.duplicated:
        print("handler runs applied twice (the worker requeued them when Redis went away):\n" + runs)
    sync_mongo.drop_database(database)
    assert not failures, f"{len(failures)} writes failed while the broker was down: {failures[:3]}"
    assert outcome.written == n, outcome.line("scenario 1")
    # Every event reached the broker once ("unsent" empty) and was handled: one popped by the
    # worker as Redis stopped ("dropped" before the transport recorded messages as unacknowledged
    # when pushed) or left unacknowledged ("unacked") would show in ``where``.
    assert outcome.lost == 0 and not where, f"{outcome.line('scenario 1')}: {where}"
    assert not twice, f"{len(twice)} events published twice by the write side: {twice[:5]}"


WRITER = textwrap.dedent("""
    import asyncio, os, signal, sys
    import ormevents
    from tests.faults.fault_models import FaultNote

    mongo, redis_url, queue, database, run, n, out, mode = sys.argv[1:9]
    n = int(n)

    async def main():
        await ormevents.init(mongo_uri=mongo, database=database, redis_uri=redis_url,
                             event_config={"queue_name": queue})
        log = open(out, "a", buffering=1)
        outbox = ormevents.get_runtime().publisher.outbox
        submit = outbox.submit
        def killed_before_the_hand_off(records):
            for record in records:
                log.write(record.id + "\\n")
            if sum(1 for _ in open(out)) >= n:
                os.kill(os.getpid(), signal.SIGKILL)
        def acknowledged(records):
            submit(records)
            for record in records:
                log.write(record.id + "\\n")
        outbox.submit = killed_before_the_hand_off if mode == "between" else acknowledged
        for i in range(n if mode == "between" else 10 * n):
            await FaultNote.create(run=run, i=i)
            await asyncio.sleep(0)

    asyncio.run(main())
""")


def run_writer(args: list[str], kill_after: float | None = None) -> int:
    """Run the writer subprocess; SIGKILL it ``kill_after`` seconds after its first acknowledged
    write (its log file, ``args[6]``, is not empty; a loaded machine may take seconds to start
    it) if given; returns its exit code."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, *args], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
    if kill_after is not None:
        log, deadline = Path(args[6]), time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline and not (log.exists() and log.stat().st_size):
            time.sleep(0.05)
        time.sleep(kill_after)
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=120)
    return process.returncode


async def test_3_writer_killed_between_the_write_and_the_hand_off(
        redis_uri: str, mongo_uri: str, sync_mongo: Any, run_name: str) -> None:
    n = size(100, 500)
    queue, database = f"{run_name}:events", run_name
    lines = []
    with fault_worker(queue, redis_uri, mongo_uri, database) as worker:
        for mode, kill_after in (("between", None), ("random", 1.5)):
            out = tempfile.mktemp(prefix=f"ormevents-{mode}-")
            code = await asyncio.to_thread(run_writer, [mongo_uri, redis_uri, queue, database, run_name, str(n), out,
                                                        mode], kill_after)
            ids = Path(out).read_text().split()
            Path(out).unlink()
            assert code == -signal.SIGKILL and ids, f"the writer was not killed as planned (exit {code}, {len(ids)} ids)"
            await wait_until(lambda: count(ids, mongo_effects(sync_mongo, database, run_name)).lost == 0,
                             DELIVERY_TIMEOUT)
            outcome = count(ids, mongo_effects(sync_mongo, database, run_name))
            twice = published_twice(worker, ids)
            lines.append(outcome.line(f"scenario 3 ({mode}: SIGKILL " + (
                f"right after write {n}, before any hand-off" if mode == "between" else f"{kill_after} s after the first "
                "write, during writes with real hand-offs") + ")") + f" published_twice={len(twice)}")
            assert outcome.lost == 0 and not twice, lines[-1]
            assert outcome.duplicated == 0, lines[-1]  # no Redis fault here: the worker never requeues
    print("\n".join(lines))
    sync_mongo.drop_database(database)


async def test_5_mongodb_restarted_during_writes(
        fault_mongo: RestartableMongo, redis_uri: str, run_name: str) -> None:
    n = size(200, 1000)
    queue, database = f"{run_name}:events", run_name
    rdb = redis.Redis.from_url(redis_uri)
    writer_url = fault_mongo.url + "&serverSelectionTimeoutMS=3000"
    with fault_worker(queue, redis_uri, fault_mongo.url, database, effects="redis", effects_redis=redis_uri) as worker:
        await ormevents.init(mongo_uri=writer_url, database=database, redis_uri=redis_uri,
                             event_config={"queue_name": queue})
        failures: list[BaseException] = []
        restart: asyncio.Future[float] | None = None
        try:
            with capture_events() as captured:
                for i in range(n):
                    if i == n // 3:
                        restart = asyncio.ensure_future(asyncio.to_thread(fault_mongo.restart, 1.0))
                    try:
                        await FaultNote.create(run=run_name, i=i)
                    except Exception as error:
                        failures.append(error)
                    await asyncio.sleep(0.002 if restart is not None and not restart.done() else 0)
            down = await restart if restart is not None else 0.0
            await ormevents.flush()
        finally:
            await ormevents.close()
        acknowledged = [str(e.id) for e in captured.events]
        await wait_until(lambda: count(acknowledged, redis_effects(rdb, run_name)).lost == 0, DELIVERY_TIMEOUT)
        outcome = count(acknowledged, redis_effects(rdb, run_name))
        twice = published_twice(worker, acknowledged)
    untyped = [e for e in failures if not isinstance(e, OrmEventsError) or e.__cause__ is None]
    kinds = sorted({f"{type(e).__name__}<-{type(e.__cause__).__name__}" for e in failures})
    print(outcome.line(f"scenario 5, MongoDB restarted (down {down:.1f} s) during {n} writes") +
          f" published_twice={len(twice)} failed_writes={len(failures)} {kinds}")
    pymongo.MongoClient(fault_mongo.url).drop_database(database)
    assert not untyped, f"{len(untyped)} writes failed with an untyped error or no cause: {untyped[:3]!r}"
    assert all(isinstance(e, DatabaseUnavailableError) for e in failures), kinds
    assert outcome.lost == 0 and not twice and outcome.duplicated == 0, outcome.line("scenario 5")
