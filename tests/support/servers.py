"""Servers for the test suite: ``ORMEVENTS_TEST_MONGO_URL`` / ``ORMEVENTS_TEST_REDIS_URL`` point
it at servers of your own; otherwise private ones start (see :mod:`ormevents.testing.servers`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ormevents.testing.servers import (
    free_port,
    redis_server,
    secantus_server,
    stop,
    wait_for_port,
)

__all__ = ["free_port", "mongo_url", "redis_url", "stop", "wait_for_port"]
@contextmanager
def mongo_url() -> Iterator[str]:
    """``ORMEVENTS_TEST_MONGO_URL`` if set, else a private SecantusDB."""
    configured = os.environ.get("ORMEVENTS_TEST_MONGO_URL")
    if configured:
        yield configured
        return
    with secantus_server() as uri:
        yield uri


@contextmanager
def redis_url() -> Iterator[str]:
    """``ORMEVENTS_TEST_REDIS_URL`` if set, else a private Redis-compatible server."""
    configured = os.environ.get("ORMEVENTS_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    with redis_server() as url:
        yield url
