"""What every benchmark handler and raw Celery task does, so both sides do the same work.

* :func:`count` — one Redis ``INCR`` of ``bench:count:<run>``; the harness waits for the
  counter to reach the number of runs it expects (that is how it sees the drain point);
* :func:`stamp` — one ``RPUSH`` of ``time.time()`` to ``key`` as the very first thing, so the
  harness can read when the handler (or task) started.

Each process gets its own client (created after the fork), from ``BENCH_REDIS_URL`` or
``ORMEVENTS_REDIS_URL``.
"""

from __future__ import annotations

import os
import time

import redis

_clients: dict[int, redis.Redis] = {}


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


def stamp(key: str) -> None:
    """Record the start time of this handler run (or task) under ``key``."""
    client().rpush(key, repr(time.time()))
