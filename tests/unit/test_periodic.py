"""The worker's periodic Redis chores: the first tick can be waited for (a worker is only
"ready" once its heartbeat, which names its handlers, has been written)."""

from __future__ import annotations

import threading

import redis

from ormevents.delivery.celery.periodic import PeriodicThread


class Chore(PeriodicThread):
    def __init__(self, fail: bool) -> None:
        super().__init__("test-chore", every=60.0)
        self.fail, self.release, self.calls = fail, threading.Event(), 0

    def tick(self) -> None:
        self.release.wait(5.0)
        self.calls += 1
        if self.fail:
            raise redis.ConnectionError("down")


def test_first_tick_is_set_once_the_first_call_returned_or_failed() -> None:
    for fail in (False, True):
        chore = Chore(fail)
        chore.start()
        assert not chore.first_tick.wait(0.1)  # the call is still running
        chore.release.set()
        assert chore.first_tick.wait(5.0) and chore.calls == 1
        chore.stop()
        assert not chore.is_alive()
