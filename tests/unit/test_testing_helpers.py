"""Eager mode and capture_events: handlers run in-process with simulated time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

import ormevents
from ormevents import (
    Event,
    Changed,
    EventModel,
    JobAlreadyRetriedError,
    JobNotFoundError,
    RetryPolicy,
    event_bus,
    event_handler,
)
from ormevents.errors import InvalidFilterError
from ormevents.handlers import HandlerRegistry
from ormevents.jobs.records import FailedJobRetention
from ormevents.testing import EagerPublisher, capture_events, eager_publisher

local = HandlerRegistry()
SEEN: list[Any] = []


class Member(EventModel):
    name: str
    status: str = "new"


@event_handler("member.created", registry=local, name="t.welcome")
async def welcome(event: Event) -> dict[str, str]:
    SEEN.append(("welcome", event.data["name"]))
    return {"sent": event.data["name"]}


@event_handler("member.updated", when="status", changes_to="active", registry=local, name="t.activated")
def activated(event: Event) -> None:
    SEEN.append(("activated", event.changes["status"]))


FLAKY = {"calls": 0}


@event_handler("member.flaky", registry=local, name="t.flaky",
               retry=RetryPolicy(max_retries=3, interval_start=10, interval_step=10, interval_max=25))
def flaky(event: Event) -> str:
    FLAKY["calls"] += 1
    if FLAKY["calls"] < 3:
        raise ConnectionError("not yet")
    return "ok"


@event_handler("member.doomed", registry=local, name="t.doomed",
               retry=RetryPolicy(max_retries=5, dont_retry_on=[KeyError]))
def doomed(event: Event) -> None:
    raise KeyError("missing")


@event_handler("member.chain", registry=local, name="t.chain")
def chain(event: Event) -> list[dict[str, Any]]:
    return [{"name": "email.sent", "payload": {"to": "a@x"}}]


@event_handler("member.paid", registry=local, name="t.ledger")
async def ledger(event: Event, session: Any) -> str:
    SEEN.append(("ledger", session))
    return "credited"


@pytest.fixture
async def eager() -> AsyncIterator[EagerPublisher]:
    SEEN.clear()
    FLAKY["calls"] = 0
    publisher = EagerPublisher(registry=local)
    await ormevents.init(database=AsyncMongoMockClient()["eager"], publisher=publisher)
    yield publisher
    await ormevents.close()


async def test_handlers_run_right_after_the_write_with_conditions(eager: EagerPublisher) -> None:
    member = await Member.create(name="ann")
    assert SEEN == [("welcome", "ann")]
    assert eager.results_for("member.created") == [{"sent": "ann"}]
    await member.update(name="bob")                  # condition false: activated does not run
    await member.update(status="active")
    assert SEEN[-1] == ("activated", ("new", "active"))
    assert eager_publisher() is eager


class BrokenUntilFixed(Changed):
    """A condition with a bug a deploy fixes (``fixed``), then true when its path changed."""

    fixed = False

    def __call__(self, ctx: Any) -> bool:
        if not BrokenUntilFixed.fixed:
            raise LookupError("a bug in this condition")
        return super().__call__(ctx)


async def test_a_condition_that_raises_parks_its_job_and_a_retry_evaluates_it_again(
        caplog: pytest.LogCaptureFixture) -> None:
    own = HandlerRegistry()
    seen: list[Any] = []
    event_handler("member.updated", condition=BrokenUntilFixed("status"), registry=own, name="t.fixable")(
        lambda event: seen.append(("fixable", event.changes["status"])))
    event_handler("member.updated", registry=own, name="t.plain")(lambda event: seen.append(("plain", event.name)))
    eager = EagerPublisher(registry=own)
    await ormevents.init(database=AsyncMongoMockClient()["eager_conditions"], publisher=eager)
    try:
        member = await Member.create(name="ann")
        await member.update(name="bea")                               # the fixed condition will say no to this one
        [renamed] = (await event_bus.get_failed_jobs(handler="t.fixable")).items
        await member.update(status="active")
        assert seen == [("plain", "member.updated")] * 2  # the other handler ran both times
        [job] = [j for j in (await event_bus.get_failed_jobs(handler="t.fixable")).items if j.id != renamed.id]
        assert (job.reason, job.attempts, job.error_type) == ("condition_error", 0, "builtins.LookupError")
        assert "a bug in this condition" in job.error_message and "parked as a failed job" in caplog.text
        assert [run.handler for run in eager.failed_jobs] == ["t.fixable", "t.fixable"]
        await event_bus.retry_job(job.id)                             # still broken: parked again
        assert (await event_bus.get_failed_job(job.id)).reason == "condition_error"
        BrokenUntilFixed.fixed = True                                 # the deploy
        await event_bus.retry_job(job.id)
        assert seen[-1] == ("fixable", ("new", "active")) and await event_bus.count_failed() == 1
        await event_bus.retry_job(renamed.id)                         # its condition is now false: not run
        assert seen[-1] == ("fixable", ("new", "active")) and len(seen) == 3 and await event_bus.count_failed() == 0
    finally:
        BrokenUntilFixed.fixed = False
        await ormevents.close()


async def test_retries_use_simulated_time(eager: EagerPublisher) -> None:
    await eager.publish(Event(name="member.flaky"))
    [run] = eager.runs
    assert run.succeeded and run.attempts == 3 and run.retry_delays == (10.0, 20.0)
    assert eager.clock.now == 30.0                   # no real sleeping happened


async def test_non_retryable_error_lands_in_failed_jobs(eager: EagerPublisher) -> None:
    await eager.publish(Event(name="member.doomed"))
    [job] = eager.failed_jobs
    assert job.attempts == 1 and isinstance(job.error, KeyError)


async def test_delayed_events_wait_for_the_clock_and_can_be_cancelled(eager: EagerPublisher) -> None:
    soon, later = Event(name="member.created", data={"name": "soon"}), Event(name="member.created", data={"name": "later"})
    await eager.publish(later, delay=3600)
    await eager.publish(soon, delay=60)
    assert SEEN == [] and eager.pending == [soon, later]
    assert await eager.advance(59) == []
    assert await eager.advance(1) == [soon]
    assert await eager.cancel(later.id) and not await eager.cancel(later.id)
    await eager.advance(10_000)
    assert SEEN == [("welcome", "soon")]


async def test_chained_events_are_published_with_causation(eager: EagerPublisher) -> None:
    parent = Event(name="member.chain")
    await eager.publish(parent)
    assert eager.names() == ["member.chain", "email.sent"]
    assert eager.published[-1].event.metadata["causation_id"] == str(parent.id)


async def test_capture_events_records_and_forwards(eager: EagerPublisher) -> None:
    with capture_events() as events:
        member = await Member.create(name="ann")
        await member.update(status="active")
    await member.update(status="gone")
    assert events.names() == ["member.created", "member.updated"]
    assert events.named("member.updated")[0].changes["status"] == ("new", "active")
    assert len(eager.published) == 3 and SEEN[0] == ("welcome", "ann")


async def test_the_clock_never_moves_back_and_events_due_during_retries_run_after_them(eager: EagerPublisher) -> None:
    tick = Event(name="member.created", data={"name": "tick"})
    await eager.publish(tick, delay=5)
    await eager.publish(Event(name="member.flaky"))    # its retries move the clock to 30 s
    assert eager.clock.now == 30.0 and eager.pending == [] and SEEN == [("welcome", "tick")]
    FLAKY["calls"] = 0
    await eager.publish(Event(name="member.flaky"), delay=5)
    assert await eager.advance(5) and eager.clock.now == 65.0   # due at 35, then retries of 10 + 20 s


async def test_failed_jobs_through_event_bus_in_eager_mode(eager: EagerPublisher) -> None:
    events = [Event(name="member.doomed", data={"n": n}) for n in range(3)]
    for event in events:
        await eager.publish(event)
    assert await event_bus.count_failed() == 3
    assert await event_bus.count_failed(handler="t.doomed", exception="builtins.KeyError") == 3
    assert await event_bus.count_failed(handler="t.welcome") == 0
    first = await event_bus.get_failed_jobs(limit=2)
    second = await event_bus.get_failed_jobs(limit=2, cursor=first.next_cursor)
    assert len(first) == 2 and len(second) == 1 and second.next_cursor is None
    assert {job.event_id for job in first.items + second.items} == {str(event.id) for event in events}
    job = await event_bus.get_failed_job(f"{events[0].id}:t.doomed")
    assert (job.attempts, job.error_type, job.event["data"]) == (1, "builtins.KeyError", {"n": 0})
    await event_bus.remove_job(job.id)
    for call in (event_bus.get_failed_job, event_bus.remove_job, event_bus.retry_job):
        with pytest.raises(JobNotFoundError, match="no failed job"):
            await call(job.id)
    other = f"{events[1].id}:t.doomed"
    await event_bus.retry_job(other)                                  # fails again: a new record
    await event_bus.retry_job(other)
    await event_bus.remove_job(other)
    with pytest.raises(JobAlreadyRetriedError, match="already retried"):
        await event_bus.retry_job(other)                              # as a worker answers a second retry
    await eager.publish(events[1])
    assert await event_bus.retry_jobs(handler="t.doomed", dry_run=True) == 2 and len(eager.failed_jobs) == 2
    calls = len(eager.runs)
    assert await event_bus.retry_jobs(handler="t.doomed") == 2    # they ran again and failed again
    assert len(eager.runs) == calls + 2 and await event_bus.count_failed() == 2
    assert await event_bus.remove_jobs(event_name="member.doomed") == 2
    assert eager.failed_jobs == [] and await event_bus.count_failed() == 0
    with pytest.raises(InvalidFilterError):
        await event_bus.get_failed_jobs(cursor="not a cursor")


async def test_eager_failed_jobs_keep_the_retention_count() -> None:
    publisher = EagerPublisher(registry=local, failed_jobs=FailedJobRetention(max_count=2))
    for n in range(3):
        await publisher.publish(Event(name="member.doomed", data={"n": n}))
    page = await publisher.get_failed_jobs()
    assert [job.event["data"]["n"] for job in page.items] == [2, 1] and publisher.failed_store.evicted == 1


@event_handler("member.bad_result", registry=local, name="t.bad_result", retry=RetryPolicy(max_retries=1))
def bad_result(event: Event) -> object:
    return object()                                    # not JSON: a failed attempt, as on a worker


async def test_edge_cases_behave_as_on_a_worker(eager: EagerPublisher) -> None:
    from datetime import UTC, datetime, timedelta

    await eager.publish(Event(name="member.created", data={"name": "past"}), eta=datetime.now(UTC) - timedelta(seconds=5))
    await eager.publish(Event(name="member.created", data={"name": "zero"}), delay=0)
    assert SEEN == [("welcome", "past"), ("welcome", "zero")] and eager.pending == []   # sent now, not held

    await eager.publish(Event(name="member.bad_result"))             # does not raise out of publish
    [job] = (await event_bus.get_failed_jobs(handler="t.bad_result")).items
    assert job.attempts == 2 and job.error_type.endswith("UnserializableValueError")
    assert job.retry_policy is not None and job.retry_policy["max_retries"] == 1
    with pytest.raises(InvalidFilterError, match="limit"):
        await event_bus.get_failed_jobs(limit=0)

    later = Event(name="member.created", data={"name": "later"})
    await eager.publish(later, delay=1)
    local.remove("t.bad_result")                                      # gone, as in a deploy
    try:
        await event_bus.retry_job(job.id)
    finally:
        local.add(next(h for h in _BAD_RESULT))
    [unknown] = (await event_bus.get_failed_jobs(handler="t.bad_result")).items
    assert (unknown.error_type, unknown.attempts) == ("UnknownHandler", 0)  # it never ran


_BAD_RESULT = [local.get("t.bad_result")]


@event_handler("member.stubborn", registry=local, name="t.stubborn",
               retry=RetryPolicy(max_retries=1, interval_start=10, interval_step=0, interval_max=10))
def stubborn(event: Event) -> None:
    raise ConnectionError("still down")


async def test_events_that_come_due_during_a_failed_job_retry_run(eager: EagerPublisher) -> None:
    await eager.publish(Event(name="member.stubborn"))                  # 2 attempts: the clock moves 10 s
    [job] = (await event_bus.get_failed_jobs(handler="t.stubborn")).items
    tick = Event(name="member.created", data={"name": "tick"})
    await eager.publish(tick, delay=5)
    await event_bus.retry_job(job.id)                                    # fails again, the clock passes the tick
    assert eager.clock.now == 20.0 and eager.pending == [] and SEEN == [("welcome", "tick")]


async def test_a_page_of_failed_jobs_iterates_like_a_sequence_in_eager_mode(eager: EagerPublisher) -> None:
    events = [Event(name="member.doomed", data={"n": n}) for n in range(3)]
    for event in events:
        await eager.publish(event)
    page = await event_bus.get_failed_jobs(limit=2)
    try:
        seen = [job.event["data"]["n"] for job in page]
    except TypeError as exc:
        raise AssertionError(f"for job in page: {exc}") from None
    assert seen == [job.event["data"]["n"] for job in page.items] and len(page) == len(seen) == 2, \
        f"iterated {len(seen)} job(s), len(page) = {len(page)}"
    assert page.next_cursor is not None and list(await event_bus.get_failed_jobs(cursor=page.next_cursor))


async def test_an_event_no_handler_matches_is_counted_and_logged(eager: EagerPublisher,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="ormevents.delivery.eager"):
        await ormevents.event_bus.publish(Event(name="nobody.listens", data={}))
    assert [e.name for e in eager.unmatched] == ["nobody.listens"]
    assert any("matched no handler" in r.getMessage() for r in caplog.records)


async def test_a_handler_taking_a_session_gets_none_in_eager_mode(eager: EagerPublisher) -> None:
    await event_bus.publish(Event(name="member.paid"))
    assert SEEN == [("ledger", None)] and eager.results_for("member.paid") == ["credited"], (SEEN, eager.runs)
