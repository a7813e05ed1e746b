"""What every benchmark handler and raw Celery task does, so both sides do the same work.

* :func:`count` — one Redis ``INCR`` of ``bench:count:<run>``; the harness waits for the
  counter to reach the number of runs it expects (that is how it sees the drain point);
* :func:`tally` — a no-op's worth of work: one increment in process memory; a thread of the
  process adds the counts to the same counters every :data:`TALLY_EVERY` seconds (scenario 14's
  "no-op handler": the drain point is seen at most that much later, without a round trip per run);
* :func:`stamp` — one ``RPUSH`` of ``time.time()`` to ``key`` as the very first thing, so the
  harness can read when the handler (or task) started.

Each process gets its own client (created after the fork), from ``BENCH_REDIS_URL`` or
``ORMEVENTS_REDIS_URL``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import redis

_clients: dict[int, redis.Redis] = {}
TALLY_EVERY = 0.005
_tallies: Counter[str] = Counter()
_tally_lock = threading.Lock()
_reporter_pid = 0  # the process whose reporter thread runs (a forked child starts its own)


def client() -> redis.Redis:
    """This process's Redis client (a new one after a fork)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        url = os.environ.get("BENCH_REDIS_URL") or os.environ["ORMEVENTS_REDIS_URL"]
        _clients[pid] = redis.Redis.from_url(url)
    return _clients[pid]


def count_key(run: str) -> str:
    """The counter of run ``run``."""
    return f"bench:count:{run}"


def count(run: str) -> None:
    """Count one completed handler run (or task) of ``run``."""
    client().incr(count_key(run))


def tally(run: str) -> None:
    """Count one run of ``run`` in memory; this process's reporter thread adds it to the counter."""
    global _reporter_pid
    with _tally_lock:
        _tallies[run] += 1
        if _reporter_pid != os.getpid():
            _reporter_pid = os.getpid()
            threading.Thread(target=_report_tallies, name="bench-tally", daemon=True).start()


def _report_tallies() -> None:
    while True:
        time.sleep(TALLY_EVERY)
        with _tally_lock:
            counts = dict(_tallies)
            _tallies.clear()
        for run, n in counts.items():
            try:
                client().incrby(count_key(run), n)
            except redis.RedisError:  # counted at the next report
                with _tally_lock:
                    _tallies[run] += n


def stamp(key: str) -> None:
    """Record the start time of this handler run (or task) under ``key``."""
    client().rpush(key, repr(time.time()))
