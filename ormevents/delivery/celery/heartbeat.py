"""The worker's heartbeat: which workers serve a queue, and which broker queues they consume.

Every worker's main process (started at ``worker_ready``) writes one field of
``<queue>:workers`` every :data:`EVERY` seconds: its Celery node name -> ``{"host", "pid",
"queues", "started", "seen", "handlers", "patterns"}`` (``handlers``: the names it has imported -> their own
queue or ``null``, so a replay can refuse a handler no worker runs; ``patterns``: the same names -> their
event-name pattern, so a replay sends a handler only the events it listens to); a warm shutdown removes it. The dashboard and
:func:`ormevents.jobs.activity.read_workers` read it (a worker not seen for 30 s is shown as gone),
and measure the depth of each queue a worker consumes. One small ``HSET`` every 5 s per worker.

Example::

    beat = Heartbeat(client, Keys("shop:events"), "w1@host", ["shop:events"])
    beat.start()
    ...
    beat.stop()
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import redis

from ...jobs.keys import Keys
from .periodic import PeriodicThread

logger = logging.getLogger("ormevents.delivery.celery.heartbeat")

EVERY = 5.0
"""Seconds between two heartbeats."""


class Heartbeat(PeriodicThread):
    """A daemon thread writing this worker's heartbeat (see module doc)."""

    def __init__(self, client: redis.Redis, keys: Keys, name: str, queues: Sequence[str], every: float = EVERY,
                 handlers: dict[str, str | None] | None = None, patterns: dict[str, str] | None = None) -> None:
        super().__init__("ormevents-heartbeat", every)
        self.client, self.keys, self.worker = client, keys, name
        self.queues = sorted(set(queues))
        self.handlers = dict(handlers or {})
        self.patterns = dict(patterns or {})
        self.started = time.time()

    def tick(self) -> None:
        """Write the heartbeat once."""
        value = {"host": socket.gethostname(), "pid": os.getpid(), "queues": self.queues,
                 "started": self.started, "seen": time.time(), "handlers": self.handlers,
                 "patterns": self.patterns}
        self.client.hset(self.keys.workers, self.worker, json.dumps(value))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating and remove this worker's entry (best effort)."""
        super().stop(timeout)
        try:
            self.client.hdel(self.keys.workers, self.worker)
        except redis.RedisError:
            logger.warning("could not remove the worker heartbeat", exc_info=True)


def consumed_queues(app: Any) -> list[str]:
    """The broker queues ``app``'s worker consumes (after ``-Q`` and ``select_add``)."""
    try:
        return sorted(app.amqp.queues.consume_from)
    except Exception:  # an app without amqp queues set up yet: name none rather than fail the worker
        return []
