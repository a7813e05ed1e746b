"""The ``ormevents`` command line under an operator's hands: data that looks like markup, bad URLs,
``--json`` for every command, confirmation and progress for bulk changes (on a real Redis)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from ormevents import Event
from ormevents.jobs.keys import Keys
from ormevents.jobs.records import FailedJob
from ormevents.jobs.redis_store import FailedJobStore
from ormevents.jobs.status import StatusWriter
from ormevents.ops.cli import build
from tests.integration.worker_process import ROOT

pytestmark = pytest.mark.integration

MARKUP = "[bold]loud[/bold] [/] [red]red [link=http://x]y"


@pytest.fixture
def queue(redis_uri: str) -> Iterator[str]:
    name = f"cli{uuid.uuid4().hex[:8]}:events"
    yield name
    client = redis.Redis.from_url(redis_uri)
    client.delete(*(client.keys(f"{name}*") or [name]))
    client.close()


@pytest.fixture
def store(redis_uri: str, queue: str) -> Iterator[FailedJobStore]:
    client = redis.Redis.from_url(redis_uri)
    yield FailedJobStore(client, queue)
    client.close()


def failed(store: FailedJobStore, n: int = 0, handler: str = "billing.activate", model: str = "invoice",
           message: str = "gateway timed out") -> FailedJob:
    event = Event(name=f"{model}.created", data={"n": n})
    job = FailedJob(id=FailedJob.make_id(str(event.id), handler), queue=store.queue_name, handler=handler,
                    event=event.to_dict(), event_id=str(event.id), event_name=event.name, model=model,
                    error_type="builtins.TimeoutError", error_message=message, traceback=f"Traceback: {message}",
                    attempts=4, failed_at=datetime.now(UTC))
    store.record(job)
    return job


def run(redis_uri: str, queue: str, *args: str) -> Any:
    # wide, so that tables do not wrap the data the assertions look for
    return CliRunner().invoke(build(), ["--redis-url", redis_uri, "--queue", queue, *args], env={"COLUMNS": "400"})


def test_data_that_looks_like_markup_is_printed_as_it_is(redis_uri: str, queue: str, store: FailedJobStore) -> None:
    job = failed(store, handler=f"h{MARKUP}", message=f"boom {MARKUP}")
    pipe = store.client.pipeline()
    writer = StatusWriter(Keys(queue))
    writer.event(pipe, job.event, "dispatched", 60, [job.handler])
    writer.handler(pipe, job.event_id, job.handler, 60, state="failed", attempts=4, last_error=f"boom {MARKUP}",
                   result=MARKUP)
    writer.gauge(pipe, job.handler, queued=1)
    pipe.execute()
    outputs = {
        "failed list": run(redis_uri, queue, "failed", "list"),
        "failed show": run(redis_uri, queue, "failed", "show", job.id),
        "events status": run(redis_uri, queue, "events", "status", job.event_id),
        "stats": run(redis_uri, queue, "stats"),
        "handlers list": run(redis_uri, queue, "handlers", "list", "--import", "tests.support.markup_handlers"),
    }
    broken = {name: f"exit {r.exit_code}, {type(r.exception).__name__ if r.exception else 'no error'}"
              for name, r in outputs.items() if r.exit_code != 0 or "[/]" not in r.output}
    assert not broken, f"commands that crashed on or swallowed markup in the data: {broken}"
    flat = {name: " ".join(r.output.split()) for name, r in outputs.items()}
    assert "[bold]loud[/bold]" in flat["failed show"] and f"boom {MARKUP}" in flat["failed show"]
    assert "[bold]odd[/] [red]handler" in flat["handlers list"]


@pytest.mark.parametrize("option, url", [
    ("--redis-url", "redis://127.0.0.1:notaport/0"),
    ("--redis-url", "http://127.0.0.1:9/"),
    ("--redis-url", "redis://127.0.0.1:9/not-a-db"),
    ("--broker-url", "amqp://[::1/"),
    ("--broker-url", "nosuchtransport://host/"),
])
def test_a_malformed_url_exits_2_with_one_line(redis_uri: str, queue: str, option: str, url: str) -> None:
    args = ["--redis-url", url if option == "--redis-url" else redis_uri, "--queue", queue]
    if option == "--broker-url":
        args += ["--broker-url", url]
    done = subprocess.run([sys.executable, "-m", "ormevents", *args, "failed", "retry", "x:y"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, \
        f"{option} {url}: exit {done.returncode}, {len(lines)} line(s) on stderr: {done.stderr.strip()[-300:]!r}"
    assert lines[0].startswith(f"error: {option}") and url in lines[0]


def test_retry_and_remove_answer_in_json(redis_uri: str, queue: str, store: FailedJobStore) -> None:
    jobs = [failed(store, n) for n in range(3)]
    outputs = [run(redis_uri, queue, "failed", "remove", jobs[0].id, "--json"),
               run(redis_uri, queue, "failed", "retry", "--all", "--model", "invoice", "--dry-run", "--json"),
               run(redis_uri, queue, "failed", "remove", "--all", "--model", "invoice", "--yes", "--json")]
    codes = [r.exit_code for r in outputs]
    assert codes == [0, 0, 0], f"exit codes of remove/retry --json: {codes}: {[r.output[-200:] for r in outputs]}"
    assert [json.loads(r.output) for r in outputs] == [
        {"action": "remove", "job_id": jobs[0].id, "count": 1, "dry_run": False},
        {"action": "retry", "count": 2, "dry_run": True},
        {"action": "remove", "count": 2, "dry_run": False},
    ]
    missing = run(redis_uri, queue, "failed", "retry", jobs[0].id, "--json")
    assert missing.exit_code == 1 and "no failed job" in missing.output


def test_bulk_changes_need_yes_when_no_one_can_be_asked(redis_uri: str, queue: str, store: FailedJobStore) -> None:
    failed(store)
    for verb in ("retry", "remove"):
        refused = subprocess.run([sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", queue,
                                  "failed", verb, "--all"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
        assert refused.returncode == 2 and "--yes" in refused.stderr, \
            f"{verb} --all without a terminal and without --yes: exit {refused.returncode}: {refused.stderr[-200:]!r}"
    assert store.count() == 1


def on_a_terminal(redis_uri: str, queue: str, *args: str, answer: str | None = None,
                  timeout: float = 60) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin/stdout/stderr; answer the first prompt."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen([sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", queue,
                                *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env,
                               start_new_session=True)
    os.close(slave)
    out, answered, deadline = b"", answer is None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            out += chunk
        if not answered and b"[y/N]" in out:
            os.write(master, answer.encode() + b"\n")  # type: ignore[union-attr]  # answered is False only with answer
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(master)
    code = process.wait(10)
    return code, out.decode(errors="replace").replace("\r", "")


def test_bulk_changes_ask_on_a_terminal_and_show_progress(redis_uri: str, queue: str, store: FailedJobStore) -> None:
    pipe = store.client.pipeline(transaction=False)
    for n in range(2000):
        event = Event(name="invoice.created", data={"n": n})
        store.record(FailedJob(id=f"{event.id}:h", queue=queue, handler="h", event=event.to_dict(),
                               event_id=str(event.id), event_name=event.name, model="invoice",
                               error_type="builtins.TimeoutError", error_message="x", attempts=1), pipe=pipe)
    pipe.execute()
    code, said_no = on_a_terminal(redis_uri, queue, "failed", "remove", "--all", "--model", "invoice", answer="n")
    asked = "[y/N]" in said_no
    assert asked and code == 1 and store.count() == 2000, \
        f"remove --all on a terminal: asked: {asked}, exit {code}, jobs left {store.count()} of 2000: {said_no[-300:]!r}"
    code, said_yes = on_a_terminal(redis_uri, queue, "failed", "retry", "--all", "--model", "invoice", answer="y")
    assert code == 0 and "retried 2000 job(s)" in said_yes and store.count() == 0, said_yes[-500:]
    assert "2000/2000" in said_yes, f"no progress bar on the terminal: {said_yes[-500:]!r}"
    assert "Retry 2000 failed job(s) matching model=invoice?" in said_yes


def test_a_second_retry_of_a_job_says_it_was_already_retried(redis_uri: str, queue: str, store: FailedJobStore) -> None:
    job = failed(store)                                  # no worker consumes this queue: the retry waits there
    first = run(redis_uri, queue, "failed", "retry", job.id)
    second = run(redis_uri, queue, "failed", "retry", job.id)
    assert first.exit_code == 0 and first.output.strip() == f"retried {job.id}", first.output
    assert second.exit_code == 1 and "was already retried by" in second.output, \
        f"second retry: exit {second.exit_code}: {second.output.strip()!r}"


def test_a_command_that_never_talks_to_redis_is_not_refused_for_its_url() -> None:
    done = subprocess.run([sys.executable, "-m", "ormevents", "--redis-url", "not a url", "handlers", "list",
                           "--import", "tests.integration.delivery_handlers", "--json"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and json.loads(done.stdout), done.stderr


def test_redis_refusing_a_command_is_one_line_not_a_traceback(redis_uri: str, queue: str) -> None:
    redis.Redis.from_url(redis_uri).set(Keys(queue).failed_jobs, "not a hash")        # WRONGTYPE for HGET
    done = subprocess.run([sys.executable, "-m", "ormevents", "--redis-url", redis_uri, "--queue", queue,
                           "failed", "show", "x:y"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "refused the command" in done.stderr and "Traceback" not in done.stderr, \
        done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
