"""Helpers for testing an app built on ormevents, without a broker or a worker.

What lives here: :func:`capture_events`, :func:`eager_publisher`, the pytest plugin
(``ormevents_app``, ``captured_events``) and private servers for tests (:mod:`.servers`).
Nothing in the library imports this package; your tests do.

Eager mode itself (``init(..., eager=True)``) is :class:`~ormevents.delivery.eager.EagerPublisher`,
re-exported here with its records. Never rely on eager mode alone: a worker runs handlers in
other processes, with real redeliveries; test that path too (see ``docs/testing.md``).
"""

from __future__ import annotations

from ..delivery.eager import EagerPublisher, HandlerRun, SimulatedClock
from .capture import CapturedEvents, capture_events, eager_publisher

__all__ = ["CapturedEvents", "EagerPublisher", "HandlerRun", "SimulatedClock", "capture_events", "eager_publisher"]
