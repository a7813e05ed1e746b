"""What the dispatch asks the soft time limit guard before it runs a handler inline."""

from __future__ import annotations

import time
from types import SimpleNamespace

from ormevents.delivery.celery.soft_time_limit import SoftTimeLimitGuard, soft_limit_of


def test_a_guard_leaves_a_window_until_the_limit_is_near_or_fired() -> None:
    assert SoftTimeLimitGuard().leaves(1.0), "no limit known: always"
    guard = SoftTimeLimitGuard(limit=1.2)
    assert guard.leaves(1.0)
    time.sleep(0.25)
    assert not guard.leaves(1.0) and guard.leaves(0.5)
    fired = SoftTimeLimitGuard(limit=60)
    fired._on_signal(0, None)  # arrives while the guard defers it (outside a handler)
    assert fired.fired and fired.arrived and not fired.leaves(0.0)


def test_the_soft_limit_of_a_task_message_then_task_then_setting() -> None:
    def task(header: object, own: object, setting: object) -> SimpleNamespace:
        conf = SimpleNamespace(task_soft_time_limit=setting)
        return SimpleNamespace(request=SimpleNamespace(timelimit=header), soft_time_limit=own,
                               app=SimpleNamespace(conf=conf))

    assert soft_limit_of(task((None, 3), 5, 7)) == 3.0
    assert soft_limit_of(task(None, 5, 7)) == 5.0
    assert soft_limit_of(task((10, None), None, 7)) == 7.0
    assert soft_limit_of(task(None, None, None)) is None
