"""The thread that sends the Redis schedule's due entries, holding their leases while it lives.

One runs in each worker's main process (started on ``worker_ready``, see :mod:`.tasks`); they
share the schedule safely through its atomic claims (:mod:`.scheduler`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from .scheduler import RedisSchedule, new_owner

logger = logging.getLogger("ormevents.delivery.celery.poller")


class SchedulerThread(threading.Thread):
    """Polls a :class:`RedisSchedule` and hands due messages to ``send``.

    Sleeps until the next due time, at most ``poll`` seconds (so new earlier entries are seen
    within ``poll``). Runs in the worker's main process; several workers may each run one. A
    second thread renews the leases of the entries it holds every ``lease / 3`` seconds, so
    no other poller takes them while this one lives, however slow the broker is.
    """

    def __init__(self, schedule: RedisSchedule, send: Callable[[dict[str, Any]], None], poll: float = 0.05) -> None:
        super().__init__(name="ormevents-scheduler", daemon=True)
        self.schedule = schedule
        self.send = send
        self.poll = poll
        self.owner = new_owner()
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._keeper_stop = threading.Event()  # set only once the poll thread has finished
        self._keeper = threading.Thread(target=self._keep_leases, name="ormevents-scheduler-leases", daemon=True)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and wait for it (up to ``timeout`` s).

        The entry being sent is finished, the rest of the batch is given back at once (due now,
        for any poller). Leases are renewed until the poll thread is done, so a send that
        outlasts ``timeout`` still holds its entry while this process lives.
        """
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        if not self.is_alive():
            self._keeper_stop.set()
            if self._keeper.is_alive():
                self._keeper.join(timeout)

    def run(self) -> None:
        self._keeper.start()
        while not self._stop_event.is_set():
            try:
                wait = self.tick()
            except redis.RedisError:
                logger.exception("schedule poll failed; retrying in 1 s")
                wait = 1.0
            self._stop_event.wait(wait)

    def tick(self, limit: int = 100) -> float:
        """Send what is due now; return how long to sleep."""
        items = self.schedule.claim(None, limit, self.owner)
        with self._lock:
            self._held.update(member for member, _ in items)
        try:
            for member, message in items:
                if self._stop_event.is_set():  # stopping: give the rest back now rather than hold them
                    self._give_back(member)
                    continue
                self._send(member, message)
        finally:
            with self._lock:
                self._held.difference_update(member for member, _ in items)
        if len(items) == limit:
            return 0.0
        upcoming = self.schedule.next_due()
        if upcoming is None:
            return self.poll
        return min(max(upcoming - time.time(), 0.0), self.poll)

    def _send(self, member: str, message: dict[str, Any]) -> None:
        with self._lock:
            if member not in self._held:  # our lease lapsed (this process was frozen): another poller has it
                logger.warning("scheduled %s is no longer ours; leaving it to the poller that took it", member)
                return
        try:
            self.send(message)
        except Exception:
            logger.exception("sending scheduled %s failed; trying again in 1 s", member)
            with self._lock:
                self._held.discard(member)
            self.schedule.postpone(member, 1.0, self.owner)
        else:
            with self._lock:
                self._held.discard(member)
            self.schedule.done(member, self.owner)

    def _give_back(self, member: str) -> None:
        with self._lock:
            self._held.discard(member)
        self.schedule.postpone(member, 0.0, self.owner)

    def _keep_leases(self) -> None:
        every = max(self.schedule.lease / 3, 0.01)
        while not self._keeper_stop.wait(every):
            with self._lock:
                held = list(self._held)
            try:
                kept = self.schedule.renew(held, self.owner)
            except redis.RedisError:
                logger.warning("renewing the schedule leases failed; retrying", exc_info=True)
                continue
            lost = set(held) - kept
            if lost:
                with self._lock:
                    self._held.difference_update(lost)
