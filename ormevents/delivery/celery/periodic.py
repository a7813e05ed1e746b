"""A daemon thread that runs one Redis chore every few seconds until it is stopped.

The worker's main process runs several (the heartbeat, the restorer of unacknowledged
messages); a Redis error is logged and the chore tried again at the next tick.

Example::

    class Beat(PeriodicThread):
        def tick(self) -> None:
            client.hset("workers", "w1", "alive")

    beat = Beat("ormevents-beat", every=5.0)
    beat.start()
    ...
    beat.stop()
"""

from __future__ import annotations

import logging
import threading

import redis

logger = logging.getLogger("ormevents.delivery.celery.periodic")


class PeriodicThread(threading.Thread):
    """Calls :meth:`tick` at once, then every ``every`` seconds, until :meth:`stop`;
    :attr:`first_tick` is set once the first call returned (or failed)."""

    def __init__(self, name: str, every: float) -> None:
        super().__init__(name=name, daemon=True)
        self.every = every
        self.first_tick = threading.Event()
        self._stop_event = threading.Event()

    def tick(self) -> None:
        """The chore (subclasses define it); a ``redis.RedisError`` is logged and retried next tick."""
        raise NotImplementedError

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.tick()
            except redis.RedisError:
                logger.warning("%s: Redis call failed; retrying in %.1f s", self.name, self.every, exc_info=True)
            self.first_tick.set()
            self._stop_event.wait(self.every)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop ticking and wait for the thread (up to ``timeout`` s)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
