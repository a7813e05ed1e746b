"""Failed-job store at scale: fill N records (pipelined), then page through all of them.

Runs on a private Redis-compatible server it starts itself.

    python benchmarks/failed_jobs_paging.py [--jobs 100000] [--page 50]

Prints, in milliseconds: the median (and p99) time of one page over the whole walk, of the
first and the last 100 pages (an index walk stays flat; a scan would grow), of a page filtered
by handler, of a count by one filter and by two (ZINTERSTORE), and of a lookup by id.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from ormevents import Event  # noqa: E402
from ormevents.jobs.records import FailedJob, FailedJobFilter, FailedJobRetention  # noqa: E402
from ormevents.jobs.redis_store import FailedJobStore  # noqa: E402
from ormevents.testing.servers import redis_server  # noqa: E402

HANDLERS = [f"shop.handler_{n}" for n in range(10)]
ERRORS = ["builtins.TimeoutError", "builtins.ValueError", "builtins.KeyError"]


def fill(store: FailedJobStore, count: int) -> float:
    """Record ``count`` jobs in pipelines of 1,000; returns seconds taken."""
    keep = FailedJobRetention(max_count=count + 1, max_age_days=3650)
    start, base = time.perf_counter(), time.time() - count
    pipe = store.client.pipeline(transaction=False)
    for n in range(count):
        event = Event(name=f"order.step{n % 7}", data={"n": n, "note": "x" * 200})
        handler = HANDLERS[n % len(HANDLERS)]
        store.record(FailedJob(
            id=FailedJob.make_id(str(event.id), handler), queue=store.queue_name, handler=handler,
            event=event.to_dict(), event_id=str(event.id), event_name=event.name, model=event.model,
            error_type=ERRORS[n % len(ERRORS)], error_message=f"failure {n}", traceback="Traceback ...\n" * 20,
            attempts=4, failed_at=datetime.fromtimestamp(base + n, UTC)), retention=keep, pipe=pipe)
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - start


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return (time.perf_counter() - start) * 1000, result


def walk(store: FailedJobStore, filters: FailedJobFilter, size: int) -> tuple[list[float], int]:
    times, seen, cursor = [], 0, None
    while True:
        ms, page = timed(lambda: store.page(filters, limit=size, cursor=cursor))
        times.append(ms)
        seen += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return times, seen


def p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=50)
    args = parser.parse_args()
    with redis_server() as url:
        client = redis.Redis.from_url(url)
        store = FailedJobStore(client, "bench:events")
        seconds = fill(store, args.jobs)
        print(f"filled {store.count()} failed jobs in {seconds:.1f} s ({args.jobs / seconds:,.0f}/s, pipelined)")
        times, seen = walk(store, FailedJobFilter(), args.page)
        assert seen == args.jobs, (seen, args.jobs)
        print(f"page of {args.page}, all {len(times)} pages: median {statistics.median(times):.2f} ms, "
              f"p99 {p99(times):.2f} ms")
        print(f"  first 100 pages median {statistics.median(times[:100]):.2f} ms, "
              f"last 100 pages median {statistics.median(times[-100:]):.2f} ms")
        by_handler = FailedJobFilter(handler=HANDLERS[3])
        handler_times, handler_seen = walk(store, by_handler, args.page)
        print(f"page filtered by handler ({handler_seen} jobs): median {statistics.median(handler_times):.2f} ms")
        counts = [timed(lambda: store.count(by_handler))[0] for _ in range(50)]
        both = FailedJobFilter(handler=HANDLERS[3], exception=ERRORS[1])
        two = [timed(lambda: store.count(both)) for _ in range(20)]
        print(f"count by handler: median {statistics.median(counts):.3f} ms; by handler+exception "
              f"({two[0][1]} jobs): median {statistics.median(t for t, _ in two):.2f} ms")
        some_id = store.page(limit=1).items[0].id
        gets = [timed(lambda: store.get(some_id))[0] for _ in range(50)]
        print(f"get by id: median {statistics.median(gets):.3f} ms")
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
