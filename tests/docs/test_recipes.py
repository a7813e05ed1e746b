"""The recipes' code runs as their pages show it: the project files (blocks titled with a path)
are written out, the pages' own command lines start the processes against private servers
(only the URLs and the port are replaced), and the endpoints and handlers answer."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import ormevents
from ormevents import Event
from tests.docs.doc_blocks import DOCS, project_files
from tests.support.servers import free_port, stop

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def write_project(page: Path, root: Path, replace: dict[str, str]) -> None:
    """Write the page's project files under ``root`` (and the empty ``__init__.py`` files), with
    the servers' URLs replaced: nothing may reach a server on the machine's default ports."""
    for path, code in project_files(page).items():
        for old, new in replace.items():
            code = code.replace(old, new)
        assert "localhost:" not in code and "127.0.0.1:6379" not in code, f"{path} still names a default server"
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        (target.parent / "__init__.py").touch()
        target.write_text(code)


def commands(page: Path, program: str, replace: dict[str, str]) -> list[tuple[dict[str, str], list[str]]]:
    """Each command line of the page's sh blocks running ``program``: (its variables, its argv)."""
    found = []
    for line in re.findall(rf"^((?:[A-Z_]+=\S+ )*{program} .*)$", page.read_text(), re.M):
        for old, new in replace.items():
            line = line.replace(old, new)
        words = shlex.split(line)
        env = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_]+=.*", w))
        found.append((env, [w for w in words if not re.fullmatch(r"[A-Z_]+=.*", w)]))
    assert found, f"{page.name} shows no {program} command"
    return found


@contextmanager
def started(argv: list[str], env: dict[str, str], cwd: Path) -> Iterator[Path]:
    """``argv`` (a console script of this environment) running in ``cwd``; yields its log file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORMEVENTS_") and k != "PYTHONPATH"}
    log_path = cwd / f"{argv[0]}-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=cwd, env={**clean, **env}, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            yield log_path
        finally:
            stop(process)  # type: ignore[arg-type]  # Popen[bytes]


def until(check: object, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()  # type: ignore[operator]
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_fastapi_recipe(tmp_path: Path, mongo_uri: str, redis_uri: str) -> None:
    page = DOCS / "recipes" / "fastapi.md"
    port = free_port()
    urls = {"mongodb://localhost:27017": mongo_uri, "redis://localhost:6379/0": redis_uri.rsplit("/", 1)[0] + "/9",
            "--port 8000": f"--port {port}"}
    write_project(page, tmp_path, urls)
    [(api_env, api_argv)] = commands(page, "uvicorn", urls)
    [(worker_env, worker_argv)] = commands(page, "celery", urls)
    assert set(worker_env) == {"ORMEVENTS_REDIS_URL", "ORMEVENTS_QUEUE", "ORMEVENTS_IMPORTS"}
    with started(worker_argv, worker_env, tmp_path) as worker_log, started(api_argv, api_env, tmp_path) as api_log:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, api_log.read_text(errors="replace")[-3000:]
                time.sleep(0.1)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        created = api.post("/users", json={"email": "ann@example.com", "password": "pw"})
        assert created.status_code == 201, api_log.read_text(errors="replace")[-3000:]
        user = created.json()
        upgraded = api.post(f"/users/{user['id']}/upgrade")
        assert upgraded.status_code == 200, api_log.read_text(errors="replace")[-3000:]
        event = Event.model_validate_json(upgraded.text)  # the endpoint's Event, read back exactly
        assert (event.name, event.data["plan"], str(event.object_id)) == ("user.upgraded", "pro", user["id"])

        def billed() -> dict[str, object] | None:
            status = api.get(f"/events/{event.id}")
            handlers = status.json().get("handlers", {}) if status.status_code == 200 else {}
            run = handlers.get("shop.start_billing", {})
            return run if run.get("state") == "succeeded" else None

        run = until(billed)
        assert run, worker_log.read_text(errors="replace")[-3000:]
        assert run["result"] == f"billing {user['id']} on pro"  # type: ignore[index]
        assert api.post("/users/not-an-id/upgrade").status_code == 404
        assert api.get(f"/events/{uuid.uuid4()}").status_code == 404
        api.close()


async def test_existing_celery_app_recipe(tmp_path: Path, mongo_uri: str, redis_uri: str) -> None:
    page = DOCS / "recipes" / "existing-celery-app.md"
    redis_db = redis_uri.rsplit("/", 1)[0] + "/10"
    urls = {"redis://localhost:6379/0": redis_db}
    write_project(page, tmp_path, urls)
    [(env, argv)] = [(env, argv) for env, argv in commands(page, "celery", urls) if "worker" in argv]
    assert argv[:3] == ["celery", "-A", "shop.celery_app"]  # the user's own app module
    with started(argv + ["-l", "info"], env, tmp_path) as worker_log:
        assert until(lambda: " ready." in worker_log.read_text(errors="replace")), worker_log.read_text()[-3000:]
        await ormevents.init(mongo_uri=mongo_uri, database="recipes", redis_uri=redis_db, broker_url=redis_db,
                             event_config={"queue_name": "shop:events"})
        try:
            event = Event(name="invoice.paid", data={"invoice": "F-7", "amount": 120})
            await ormevents.event_bus.publish(event)
            deadline = time.monotonic() + 30
            while True:
                status = await ormevents.event_bus.get_handler_status(event.id, "shop.send_receipt")
                if status is not None and status.state == "succeeded":
                    break
                assert time.monotonic() < deadline, worker_log.read_text(errors="replace")[-3000:]
                await asyncio.sleep(0.1)
            assert status.result == "receipt for F-7"
        finally:
            await ormevents.close()
        log = worker_log.read_text(errors="replace")
        assert "shop.tasks.nightly_report" in log and "ormevents.run_handler" in log  # both kinds registered
