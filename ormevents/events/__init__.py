"""Events: the :class:`Event` record, its JSON codec, naming, patterns and redaction (pure, no I/O).

Anything may import this package; it imports only :mod:`ormevents.errors`, pydantic and bson.
"""

from __future__ import annotations

from .event import Event, validate_action, validate_event_name

__all__ = ["Event", "validate_action", "validate_event_name"]
