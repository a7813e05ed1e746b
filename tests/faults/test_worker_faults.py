"""Fault scenarios of the worker side (issue 12: 2, 4 and 6), each printing ``lost=N duplicated=N``.

Real ``celery worker`` subprocesses on the suite's private Redis and SecantusDB; handlers and
helpers in :mod:`tests.faults.worker_support`. Each runs alone (``pytest
tests/faults/test_worker_faults.py -k 2 -s``); ``make test`` runs the short form, and
``ORMEVENTS_FAULTS=full`` the sizes of the issue (2,000 events for scenario 2).

2. the worker (main process and pool) SIGKILLed several times while it handles events whose
   handler writes ``effects/<event id>`` in its MongoDB transaction (the inbox): every event
   handled, no effect applied twice (a second insert of an id would be a counted collision);
4. delayed events, a 2 s ``visibility_timeout``, a quarter of the handlers running 4 s (longer than
   that), two workers restarted while the events come due (a starting worker hands out again the
   messages the other one holds for longer than the timeout): each event runs once, and a copy of a
   run still in progress waits for its lease instead of counting as a failed attempt;
6. a handler that kills its process: parked as a ``worker_lost`` failed job after its attempts,
   while the other events keep flowing, each handled once.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from ormevents import Event
from tests.faults.worker_support import POISON_RETRY, Scenario, report, size

pytestmark = pytest.mark.integration


async def test_2_worker_sigkilled_during_events_applies_every_effect_once(
        redis_uri: str, mongo_uri: str, pymongo_client: Any) -> None:
    n, kills = size(300, 2000), size(2, 4)
    scenario = Scenario(redis_uri, mongo_uri, ORMEVENTS_VISIBILITY_TIMEOUT="2")
    effects = pymongo_client[scenario.database]["effects"]
    try:
        await scenario.start()
        worker, began = scenario.workers[0], time.monotonic()
        publishing = asyncio.create_task(scenario.publish([Event(name="fault.effect", data={"n": i})
                                                           for i in range(n)], pace=10))
        for k in range(kills):
            target = n * (k + 1) // (kills + 1)
            await scenario.until(lambda target=target: _at_least(effects, target), timeout=120)
            await scenario.kill(worker)
            await asyncio.sleep(2.2)              # past the visibility timeout: the next start restores its messages
            await asyncio.to_thread(worker.start)
        await publishing

        async def settled() -> bool:
            return scenario.idle() and await effects.count_documents({}) == n

        await scenario.until(settled, timeout=180)
        applied = await effects.count_documents({})
        lost, duplicated, failed = n - applied, scenario.collisions(), len(scenario.failed_jobs())
        report("2 (worker SIGKILLed during events, MongoDB inbox)", lost, duplicated, events=n, kills=kills,
               failed_jobs=failed, lost_runs_retried=scenario.logged("died during attempt"),
               dead_transactions_aborted=scenario.logged("aborted the open transaction"),
               inbox_skips=scenario.logged("had already applied its effect"), seconds=round(time.monotonic() - began, 1))
        assert (lost, duplicated, failed) == (0, 0, 0), \
            f"lost={lost} duplicated={duplicated} failed jobs={failed} after {kills} SIGKILLs during {n} events"
    finally:
        await scenario.close()
        await pymongo_client.drop_database(scenario.database)


async def _at_least(effects: Any, target: int) -> bool:
    return bool(await effects.count_documents({}) >= target)


async def test_4_delayed_events_with_a_short_visibility_timeout_run_once_across_restarts(
        redis_uri: str, mongo_uri: str) -> None:
    n, span, restarts = size(40, 300), size(6, 20), size(2, 4)
    scenario = Scenario(redis_uri, mongo_uri, ORMEVENTS_VISIBILITY_TIMEOUT="2", ORMEVENTS_RUN_LEASE="3")
    try:
        await scenario.start(2)
        began = time.monotonic()
        events = [Event(name="fault.delayed", data={"n": i, "sleep": 4 if i % 4 == 0 else 0.1}) for i in range(n)]
        await scenario.publish(events, delays=[1 + span * i / n for i in range(n)])
        for k in range(restarts):                 # while the events come due, one worker after the other
            await asyncio.sleep(span / (restarts + 1))
            await scenario.restart(scenario.workers[k % 2])
        await scenario.until(lambda: scenario.completed(events) == n and scenario.idle(), timeout=span + 90)
        await asyncio.sleep(1.0)
        runs = scenario.runs()
        lost = sum(1 for event in events if str(event.id) not in runs)
        duplicated = sum(count - 1 for count in runs.values() if count > 1)
        stats = scenario.stats()
        report("4 (delayed events, visibility_timeout=2 s, workers restarted)", lost, duplicated, events=n,
               restarts=restarts, longer_than_visibility=len(events[::4]), waited_for_a_lease=stats.get("busy", 0),
               skipped_copies=stats.get("duplicates", 0), retried=stats.get("retried", 0),
               seconds=round(time.monotonic() - began, 1))
        assert (lost, duplicated) == (0, 0), f"lost={lost} duplicated={duplicated} of {n} delayed events"
        assert stats.get("retried", 0) == 0, \
            f"attempts spent on copies of runs still in progress: {stats['retried']} (their handlers never failed)"
    finally:
        await scenario.close()


async def test_6_a_handler_that_kills_its_process_is_parked_while_other_events_flow(
        redis_uri: str, mongo_uri: str) -> None:
    poisons, flows = size(1, 3), size(100, 500)
    scenario = Scenario(redis_uri, mongo_uri)
    attempts = POISON_RETRY.max_retries + 1
    try:
        await scenario.start()
        began = time.monotonic()
        flowing = [Event(name="fault.flow", data={"n": i}) for i in range(flows)]
        poisoned = [Event(name="fault.poison", data={"n": i}) for i in range(poisons)]
        mixed = list(flowing)
        for index, event in enumerate(poisoned):
            mixed.insert((index + 1) * flows // (poisons + 1), event)
        await scenario.publish(mixed)
        await scenario.until(lambda: len(scenario.failed_jobs()) == poisons and scenario.idle()
                             and scenario.completed(flowing) == flows, timeout=120)
        await asyncio.sleep(1.0)                  # a redelivery after parking would show now
        runs, jobs = scenario.runs(), [json.loads(job) for job in scenario.failed_jobs().values()]
        lost = sum(1 for event in flowing if str(event.id) not in runs)
        duplicated = sum(runs[str(event.id)] - 1 for event in flowing if runs.get(str(event.id), 0) > 1)
        poison_runs = [runs.get(str(event.id), 0) for event in poisoned]
        parked = sorted({(job["reason"], job["attempts"]) for job in jobs})
        report("6 (a handler that kills its process)", lost, duplicated, flowing=flows, poison_events=poisons,
               poison_runs=poison_runs, parked=parked, seconds=round(time.monotonic() - began, 1))
        assert (lost, duplicated) == (0, 0), f"lost={lost} duplicated={duplicated} of {flows} events flowing meanwhile"
        assert poison_runs == [attempts] * poisons and parked == [("worker_lost", attempts)], \
            f"runs of each poison event: {poison_runs} (policy: {attempts}); parked as: {parked}"
    finally:
        await scenario.close()
