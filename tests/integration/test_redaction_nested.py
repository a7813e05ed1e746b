"""Sensitive fields inside containers (issue 10, item 6) and ``events status --json`` (item 7),
through a real Celery worker (the shared one, see conftest.py) and the ``ormevents`` CLI.

Every container shape carries a secret of its own; none may appear in clear in the events, the
failed-job record, the status records, what the handlers received, the logs or the CLI output.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import pytest
import redis
from pydantic import BaseModel

from ormevents import REDACTED, EventModel, Sensitive
from ormevents.testing import capture_events
from tests.integration.test_cli import cli
from tests.integration.test_delivery import records, tag, wait_for
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


class Contact(BaseModel):
    name: str
    phone: Annotated[str, Sensitive()]


class Badge(BaseModel):
    code: Annotated[str, Sensitive()]


class Vault(EventModel):
    tag: str
    contacts: list[Contact] = []
    by_name: dict[str, Contact] = {}
    maybe: Contact | None = None
    either: Badge | Contact | None = None
    deep: list[dict[str, list[Contact]]] = []
    pair: tuple[Badge, Contact] | None = None


def _secrets(t: str) -> dict[str, str]:
    return {shape: f"S3CRET-{shape}-{t}" for shape in
            ("list", "list2", "list3", "dict", "dict2", "optional", "union", "deep", "tuple")}


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [shape for shape, secret in secrets.items() if secret in text]


async def test_sensitive_values_in_containers_never_leave_in_clear(
        ops_bus: Any, ops_redis: redis.Redis, ops_queue: str, ops_worker: WorkerProcess, redis_uri: str,
        caplog: pytest.LogCaptureFixture) -> None:
    t = tag()
    s = _secrets(t)
    caplog.set_level(logging.DEBUG, logger="ormevents")
    with capture_events() as captured:
        vault = await Vault.create(
            tag=t,
            contacts=[Contact(name="ann", phone=s["list"])],
            by_name={"bob": Contact(name="bob", phone=s["dict"])},
            maybe=Contact(name="cy", phone=s["optional"]),
            either=Contact(name="di", phone=s["union"]),
            deep=[{"team": [Contact(name="ed", phone=s["deep"])]}],
            pair=(Badge(code=s["tuple"]), Contact(name="fay", phone=s["tuple"])),
        )
        vault.contacts[0].phone = s["list2"]       # contacts.0.phone
        vault.by_name["bob"].phone = s["dict2"]   # by_name.bob.phone
        await vault.save()
        vault.contacts.append(Contact(name="gus", phone=s["list3"]))  # the whole list
        await vault.save()
        switch = await vault.emit("switch")       # t.switch fails: a failed job carrying the document
        await vault.delete()                       # t.any_deleted records what it received
    events = captured.events
    assert [e.name for e in events] == ["vault.created", "vault.updated", "vault.updated", "vault.switch", "vault.deleted"]

    job_id = f"{switch.id}:t.switch"
    await wait_for(lambda: ops_redis.hexists(f"{ops_queue}:failed:jobs", job_id), timeout=20)
    await wait_for(lambda: records(ops_redis, ops_queue, "t.any_deleted", t), timeout=20)
    leaks: dict[str, list[str]] = {}

    def check(place: str, text: str) -> None:
        found = _leaks(text, s)
        if found:
            leaks[place] = found

    for event in events:
        check(f"event {event.name}", event.to_json())
    check("failed-job record", ops_redis.hget(f"{ops_queue}:failed:jobs", job_id) or "")
    for event in events:
        check(f"status record of {event.name}", json.dumps(ops_redis.hgetall(f"{ops_queue}:status:{event.id}")))
    check("what t.any_deleted received", json.dumps(records(ops_redis, ops_queue, "t.any_deleted", t)))
    check("worker log", ops_worker.log())
    check("publisher logs", caplog.text)
    for args in (("failed", "show", job_id), ("failed", "show", job_id, "--json"), ("events", "status", str(switch.id))):
        run = cli(redis_uri, ops_queue, *args)
        assert run.returncode == 0, f"{' '.join(args)}: {run.stderr[-2000:]}"
        check("CLI " + " ".join(args[:2]), run.stdout + run.stderr)
    total = sum(len(v) for v in leaks.values())
    assert not leaks, f"secrets in clear: {total} in {len(leaks)} places: " + "; ".join(
        f"{place}: {', '.join(shapes)}" for place, shapes in leaks.items())
    assert events[1].changes["contacts.0.phone"] == (REDACTED, REDACTED)  # the change is kept, not its values
    assert events[1].changes["by_name.bob.phone"] == (REDACTED, REDACTED)
    assert events[0].data["contacts"][0]["name"] == "ann" and events[0].data["pair"][1]["name"] == "fay"


async def test_events_status_json_of_a_model_event(ops_bus: Any, ops_redis: redis.Redis, ops_queue: str,
                                                   redis_uri: str) -> None:
    """``ormevents events status ID --json`` on an event whose object_id is an ObjectId."""
    t = tag()
    with capture_events() as captured:
        vault = await Vault.create(tag=t)
        await vault.delete()
    deleted = captured.events[-1]
    await wait_for(lambda: records(ops_redis, ops_queue, "t.any_deleted", t), timeout=20)
    run = cli(redis_uri, ops_queue, "events", "status", str(deleted.id), "--json")
    assert run.returncode == 0, f"events status --json crashed: {run.stderr[-1500:]}"
    status = json.loads(run.stdout)
    assert status["event"]["object_id"] == {"$oid": str(vault.id)}
    assert status["event"]["name"] == "vault.deleted" and status["event"]["data"]["tag"] == t
