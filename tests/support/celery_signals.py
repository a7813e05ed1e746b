"""Undo the worker signals that ``install()`` (and so ``attach_celery()``) connects for an app,
for tests that attach ormevents to a Celery app inside the test process."""

from __future__ import annotations

from typing import Any

from celery import signals  # type: ignore[import-untyped]  # celery ships no type hints

_CONNECTED = {"pinit": signals.worker_process_init, "pshut": signals.worker_process_shutdown,
              "ready": signals.worker_ready, "shutdown": signals.worker_shutdown,
              "rejected": signals.task_rejected, "unknown": signals.task_unknown}


def disconnect_ormevents(app: Any) -> None:
    """Disconnect every signal handler ormevents connected for ``app`` (see ``tasks.install``)."""
    for uid, signal in _CONNECTED.items():
        signal.disconnect(dispatch_uid=f"ormevents:{id(app)}:{uid}")
