"""The failed-job store on a real Redis: atomic records, index filters, paging, retention, stale entries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from ormevents import Event
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.requeue import Requeue
from ormevents.errors import InvalidFilterError
from ormevents.handlers.retry import PublishRetryPolicy
from ormevents.jobs.records import FailedJob, FailedJobFilter, FailedJobRetention
from ormevents.jobs.redis_store import FailedJobStore

pytestmark = pytest.mark.integration

BASE = time.time() - 3600


@pytest.fixture
def store(redis_uri: str) -> Iterator[FailedJobStore]:
    client = redis.Redis.from_url(redis_uri)
    yield FailedJobStore(client, f"fs{uuid.uuid4().hex[:8]}")
    client.close()


def job(n: int, handler: str = "h.a", name: str = "order.created", error: str = "builtins.ValueError",
        queue: str = "q", at: float | None = None) -> FailedJob:
    event = Event(name=name, data={"n": n})
    return FailedJob(id=FailedJob.make_id(str(event.id), handler), queue=queue, handler=handler,
                     event=event.to_dict(), event_id=str(event.id), event_name=name, model=event.model,
                     error_type=error, error_message=f"boom {n}", attempts=1,
                     failed_at=datetime.fromtimestamp(at if at is not None else BASE + n, UTC))


def fill(store: FailedJobStore) -> list[FailedJob]:
    jobs = []
    for n in range(30):
        handler = "h.a" if n % 3 else "h.b"
        name = "order.created" if n % 2 else "user.updated"
        error = "builtins.KeyError" if n % 5 == 0 else "builtins.ValueError"
        jobs.append(job(n, handler, name, error, store.queue_name))
        store.record(jobs[-1])
    return jobs


def test_filters_count_and_pages_newest_first(store: FailedJobStore) -> None:
    jobs = fill(store)
    newest_first = [j.id for j in reversed(jobs)]
    cases = [
        (FailedJobFilter(), jobs),
        (FailedJobFilter(handler="h.b"), [j for j in jobs if j.handler == "h.b"]),
        (FailedJobFilter(event_name="user.updated"), [j for j in jobs if j.event_name == "user.updated"]),
        (FailedJobFilter(model="order"), [j for j in jobs if j.model == "order"]),
        (FailedJobFilter(exception="builtins.KeyError"), [j for j in jobs if j.error_type == "builtins.KeyError"]),
        (FailedJobFilter(handler="h.a", model="user", exception="builtins.ValueError"),
         [j for j in jobs if j.handler == "h.a" and j.model == "user" and j.error_type == "builtins.ValueError"]),
        (FailedJobFilter(since=datetime.fromtimestamp(BASE + 20, UTC)), jobs[20:]),
        (FailedJobFilter(handler="h.b", since=datetime.fromtimestamp(BASE + 10, UTC)),
         [j for j in jobs[10:] if j.handler == "h.b"]),
        (FailedJobFilter(handler="nobody"), []),
    ]
    for filters, expected in cases:
        ids = [j.id for j in reversed(expected)]
        assert store.count(filters) == len(ids), filters
        seen, cursor, pages = [], None, 0
        while True:
            page = store.page(filters, limit=4, cursor=cursor)
            seen += [j.id for j in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ids, filters
        assert pages == max(1, -(-len(ids) // 4)), filters
    assert [j.id for j in store.page(limit=3).items] == newest_first[:3]


def test_record_is_replaced_not_duplicated_and_removal_cleans_every_index(store: FailedJobStore) -> None:
    first = job(1, queue=store.queue_name)
    store.record(first)
    again = first.model_copy(update={"error_type": "builtins.KeyError", "attempts": 4})
    store.record(again)
    assert store.count() == 1 and store.count(FailedJobFilter(exception="builtins.ValueError")) == 0
    assert store.get(first.id) == again and store.handlers() == {"h.a": 1}
    assert store.remove(first.id) == 1 and store.remove(first.id) == 0
    assert store.client.keys(f"{store.queue_name}:failed:*") == []  # no index entry, no handler left behind


def test_compare_and_delete_keeps_a_newer_failure(store: FailedJobStore) -> None:
    old = job(1, queue=store.queue_name)
    store.record(old)
    _, raw = store.get_raw(old.id)  # type: ignore[misc]
    store.record(old.model_copy(update={"attempts": 9}))  # it failed again meanwhile
    assert store.remove(old.id, expected=raw) == -1
    assert store.get(old.id).attempts == 9  # type: ignore[union-attr]


def test_retention_by_count_and_age_evicts_oldest_and_counts(store: FailedJobStore) -> None:
    keep = FailedJobRetention(max_count=5, max_age_days=1)
    now = time.time()
    ancient = job(0, queue=store.queue_name, at=now - 3 * 86400)
    store.record(ancient, retention=FailedJobRetention(max_count=100, max_age_days=10))
    jobs = [job(n, queue=store.queue_name, at=now - 100 + n) for n in range(8)]
    evicted = [store.record(j, retention=keep) for j in jobs]
    assert sum(evicted) == 4  # the 3-day-old one (age), then the 3 oldest past 5 (count)
    assert [j.id for j in store.page(limit=10).items] == [j.id for j in reversed(jobs[3:])]
    assert int(store.client.hget(store.keys.stats, "failed_evicted")) == 4  # type: ignore[arg-type]
    assert store.count(FailedJobFilter(handler="h.a")) == 5


def test_index_entries_without_a_record_are_skipped_and_cleaned(store: FailedJobStore) -> None:
    """rq#1963: a bulk operation must not crash on an index entry whose record is gone."""
    jobs = fill(store)
    gone = jobs[-2]
    store.client.hdel(store.keys.failed_jobs, gone.id)
    page = store.page(limit=5)
    assert gone.id not in [j.id for j in page.items] and len(page.items) == 5
    assert store.client.zscore(store.keys.failed_index, gone.id) is None


def test_bad_cursor_and_limit_are_usage_errors(store: FailedJobStore) -> None:
    with pytest.raises(InvalidFilterError):
        store.page(cursor="%%%not-a-cursor")
    with pytest.raises(InvalidFilterError):
        store.page(limit=0)
    assert FailedJobFilter(since=datetime(2030, 1, 1)).min_score() == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert FailedJobFilter(since=datetime.now(UTC) - timedelta(minutes=1)).matches(job(1)) is False


class _SlowSender:
    """A Sender stand-in that records how long the retry claim still has to live while it sends."""

    def __init__(self, client: redis.Redis, store: FailedJobStore, publish_retry: PublishRetryPolicy) -> None:
        self.client, self.store = client, store
        self.settings = DeliverySettings(redis_url="redis://unused", queue_name=store.queue_name,
                                         publish_retry=publish_retry)
        self.claim_ttls: list[float] = []

    def send(self, message: dict[str, object]) -> None:
        job_id = message["id"].split(":retry:")[0]  # type: ignore[union-attr]  # a run message id is a str
        self.claim_ttls.append(self.client.pttl(self.store.keys.failed_claim(job_id)) / 1000)


def test_a_retry_claim_outlives_the_longest_send_its_publish_retry_policy_allows(store: FailedJobStore) -> None:
    patient = PublishRetryPolicy(max_retries=5, timeout=20, interval_max=2)   # a send may take ~6 x 41 s
    sender = _SlowSender(store.client, store, patient)
    store.record(job(1, queue=store.queue_name))
    first = store.page(FailedJobFilter(), limit=1).items[0]
    Requeue(store, sender).retry(first.id)  # type: ignore[arg-type]  # a stand-in with send() and settings
    longest_send = (5 + 1) * (2 * 20 + 1 + 2)
    assert sender.claim_ttls and sender.claim_ttls[0] > longest_send, \
        f"the claim had {sender.claim_ttls} s left while a send may take {longest_send} s"
