"""The ``ormevents`` command line as a subprocess, against the shared worker (see conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import redis

from ormevents import Event
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.test_failed_jobs import failed_switch
from tests.integration.worker_process import ROOT

pytestmark = pytest.mark.integration


def cli(redis_uri: str, queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", queue, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


async def test_list_show_and_page_with_json(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str, redis_uri: str) -> None:
    t = tag()
    name = f"c{t}.switch"
    events = [await failed_switch(ops_bus, ops_redis, ops_queue, t, name) for _ in range(3)]
    ids = [f"{e.id}:t.switch" for e in reversed(events)]
    listed = cli(redis_uri, ops_queue, "failed", "list", "--event", name, "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [j["id"] for j in data["items"]] == ids and data["next_cursor"] is None
    assert data["items"][0]["error_type"] == "builtins.RuntimeError" and data["items"][0]["attempts"] == 3
    seen, cursor = [], None
    while True:
        page = json.loads(cli(redis_uri, ops_queue, "failed", "list", "--model", f"c{t}", "--limit", "2", "--json",
                              *(["--cursor", cursor] if cursor else [])).stdout)
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    table = cli(redis_uri, ops_queue, "failed", "list", "--event", name, "--since", "10m")
    assert table.returncode == 0 and ids[0] in table.stdout and "failed jobs" in table.stdout
    shown = cli(redis_uri, ops_queue, "failed", "show", ids[0])
    assert shown.returncode == 0 and "RuntimeError: switch is off" in shown.stdout and "Traceback" in shown.stdout
    assert json.loads(cli(redis_uri, ops_queue, "failed", "show", ids[0], "--json").stdout)["id"] == ids[0]
    nothing = cli(redis_uri, ops_queue, "failed", "list", "--event", "no.such", "--json")
    assert nothing.returncode == 1 and json.loads(nothing.stdout) == {"items": [], "next_cursor": None}


async def test_dry_run_changes_nothing_then_retry_and_remove(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str, redis_uri: str) -> None:
    t = tag()
    name = f"d{t}.switch"
    events = [await failed_switch(ops_bus, ops_redis, ops_queue, t, name) for _ in range(3)]
    ids = [f"{e.id}:t.switch" for e in events]
    ops_redis.set(f"{ops_queue}:switch:{t}", 1)
    before = (ops_redis.hgetall(f"{ops_queue}:failed:jobs"), ops_redis.zrange(f"{ops_queue}:failed:index", 0, -1))
    for verb in ("retry", "remove"):
        dry = cli(redis_uri, ops_queue, "failed", verb, "--all", "--event", name, "--dry-run")
        assert dry.returncode == 0 and f"would {verb} 3 job(s)" in dry.stdout, dry.stderr
    assert cli(redis_uri, ops_queue, "failed", "remove", ids[0], "--dry-run").stdout.strip() == "would remove 1 job"
    assert (ops_redis.hgetall(f"{ops_queue}:failed:jobs"), ops_redis.zrange(f"{ops_queue}:failed:index", 0, -1)) == before
    assert len(records(ops_redis, ops_queue, "t.switch", t)) == 9  # nothing ran again either

    one = cli(redis_uri, ops_queue, "failed", "retry", ids[0])
    assert one.returncode == 0 and one.stdout.strip() == f"retried {ids[0]}", one.stderr
    await wait_for(lambda: len(records(ops_redis, ops_queue, "t.switch", t)) == 10)
    status = json.loads(cli(redis_uri, ops_queue, "events", "status", str(events[0].id), "--json").stdout)
    assert status["handlers"]["t.switch"]["state"] in ("queued", "running", "succeeded")
    await wait_for(lambda: json.loads(cli(redis_uri, ops_queue, "events", "status", str(events[0].id), "--json").stdout)
                   ["handlers"]["t.switch"]["state"] == "succeeded")
    assert cli(redis_uri, ops_queue, "failed", "remove", ids[1]).returncode == 0
    again = cli(redis_uri, ops_queue, "failed", "remove", ids[1])
    assert again.returncode == 1 and "no failed job" in again.stderr
    unconfirmed = cli(redis_uri, ops_queue, "failed", "retry", "--all", "--event", name)   # no terminal to ask
    assert unconfirmed.returncode == 2 and "pass --yes to confirm" in unconfirmed.stderr
    rest = cli(redis_uri, ops_queue, "failed", "retry", "--all", "--event", name, "--yes")
    assert rest.returncode == 0 and "retried 1 job(s)" in rest.stdout
    await wait_for(lambda: len(records(ops_redis, ops_queue, "t.switch", t)) == 11)
    none_left = cli(redis_uri, ops_queue, "failed", "retry", "--all", "--event", name)   # nothing to confirm
    assert none_left.returncode == 1 and "retried 0 job(s)" in none_left.stdout


def test_bad_input_exit_codes(redis_uri: str, ops_queue: str) -> None:
    cases = [
        (["failed", "list", "--since", "last tuesday"], 2, "is not a date"),
        (["failed", "retry"], 2, "give a JOB_ID or --all"),
        (["failed", "remove", "x:y", "--all"], 2, "not both"),
        (["failed", "remove", "x:y", "--handler", "h"], 2, "filters apply to --all only"),
        (["failed", "list", "--cursor", "%%%"], 2, "invalid cursor"),
        (["failed", "show", "no-such-job"], 1, "no failed job 'no-such-job'"),
        (["failed", "retry", "no-such-job"], 1, "no failed job"),
        (["events", "status", "00000000-0000-0000-0000-000000000000"], 1, "no status for event"),
    ]
    from click.testing import CliRunner

    from ormevents.ops.cli import build

    for args, code, message in cases:  # in-process (fast); the same entry point as the script
        result = CliRunner().invoke(build(), ["--redis-url", redis_uri, "--queue", ops_queue, *args])
        assert (result.exit_code, message in result.output) == (code, True), (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    bad_date = cli(redis_uri, ops_queue, "failed", "retry", "--all", "--since", "2024-13-45")
    assert bad_date.returncode == 2 and "is not a date" in bad_date.stderr and "Traceback" not in bad_date.stderr
    down = cli("redis://127.0.0.1:9/0", ops_queue, "failed", "list")
    assert down.returncode == 3 and "Traceback" not in down.stderr
    assert down.stderr.strip().startswith("error: cannot reach Redis at redis://127.0.0.1:9/0")
    assert len(down.stderr.strip().splitlines()) == 1


async def test_stats_handlers_and_worker_command(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str,
                                                 redis_uri: str) -> None:
    await failed_switch(ops_bus, ops_redis, ops_queue, tag(), "s.switch")
    stats = json.loads(cli(redis_uri, ops_queue, "stats", "--json").stdout)
    assert stats["handlers"]["t.switch"]["failed"] >= 1 and stats["failed"] >= 1
    assert stats["counters"]["failed"] >= 1 and stats["handlers"]["t.switch"]["running"] == 0
    assert "per handler" in cli(redis_uri, ops_queue, "stats").stdout
    listed = cli(redis_uri, ops_queue, "handlers", "list", "--import", "tests.integration.delivery_handlers", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["t.switch"]["pattern"] == "*.switch" and rows["t.switch"]["retry"]["max_retries"] == 2
    assert rows["t.activated"]["condition"] == "ChangesTo(path='status', value='active')"
    assert rows["t.routed"]["queue"].endswith(":slow") and rows["t.switch"]["queue"] is None
    bad = cli(redis_uri, ops_queue, "handlers", "list", "--import", "no_such_module_here")
    assert bad.returncode == 2 and "cannot import 'no_such_module_here'" in bad.stderr
    command = json.loads(cli(redis_uri, ops_queue, "worker", "--import", "shop.handlers", "--print", "-c", "2").stdout)
    assert command["argv"][1:] == ["-m", "celery", "-A", "ormevents.worker", "worker", "-Q", ops_queue, "-c", "2"]
    assert command["env"] == {"ORMEVENTS_REDIS_URL": redis_uri, "ORMEVENTS_QUEUE": ops_queue,
                              "ORMEVENTS_IMPORTS": "shop.handlers"}
    routed = json.loads(cli(redis_uri, ops_queue, "worker", "--print", "-Q", "app:emails").stdout)
    assert routed["argv"][-2:] == ["-Q", "app:emails"] and routed["argv"].count("-Q") == 1


def test_scheduled_event_status(redis_uri: str, ops_queue: str) -> None:
    import asyncio

    import ormevents

    async def publish() -> Event:
        await ormevents.init(database=object.__new__(type("Db", (), {"get_collection": None})),  # no Mongo needed
                             redis_uri=redis_uri, event_config={"queue_name": ops_queue})
        event = Event(name="reminder.later", data={})
        await ormevents.event_bus.publish(event, delay=3600)
        await ormevents.event_bus.cancel(event.id)
        await ormevents.close()
        return event

    event = asyncio.run(publish())
    shown = cli(redis_uri, ops_queue, "events", "status", str(event.id))
    assert shown.returncode == 0 and f"event {event.id} reminder.later: cancelled, due" in shown.stdout
