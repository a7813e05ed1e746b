"""Change tracking: what a write changed (:class:`ChangeSet` of :class:`FieldChange`, :func:`diff`)
and the conditions hooks and handlers test on it (pure: no I/O).

Imported by the model layer (hooks, the write path) and by the handlers; imports only events' schema helpers.
"""

from __future__ import annotations

from .diff import EMPTY, ChangeSet, FieldChange, diff

__all__ = ["EMPTY", "ChangeSet", "FieldChange", "diff"]
