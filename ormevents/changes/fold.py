"""Folding a document's diffs back into its state, and comparing the result (pure, no I/O).

:func:`fold` replays ``(action, changes)`` steps, oldest first: ``created`` starts a document
from its changes' new values, ``updated`` (and any other action carrying changes) sets each
changed path to its new value, ``deleted`` ends it (``None``). A ``created`` or ``deleted``
without changes is a custom event of that name (``emit("deleted")``: a model write's diff names
every field) and changes nothing. A path whose new value is
redacted cannot be rebuilt: it is listed in :attr:`Folded.redacted` and never compared.

A key removed from a nested dict is carried by its diff as ``new=None``, so it folds to ``None``;
:func:`disagreements` treats a ``None`` and a missing key as the same.

Example::

    >>> state = fold([("created", {"status": (None, "new"), "total": (None, 5)}),
    ...               ("updated", {"status": ("new", "paid")})])
    >>> state.document
    {'status': 'paid', 'total': 5}
    >>> disagreements(state, {"status": "paid", "total": 6})
    {'total': (5, 6)}
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events.redaction import REDACTED
from .diff import diff


@dataclass
class Folded:
    """The state a document's events rebuild: ``document`` (``None``: never created, or deleted),
    how many events were folded, and the ``redacted`` paths whose values the history does not hold."""

    document: dict[str, Any] | None = None
    events: int = 0
    redacted: set[str] = field(default_factory=set)


def fold(steps: Iterable[tuple[str, Mapping[str, tuple[Any, Any]]]]) -> Folded:
    """The state after ``steps`` (``(action, {path: (old, new)})``, oldest first; see module doc)."""
    state = Folded()
    for action, changes in steps:
        state.events += 1
        if not changes:  # a custom event (a model write's diff is never empty; see module doc)
            continue
        if action == "deleted":
            state.document = None
            continue
        if action == "created":
            state.document = {}
        if state.document is None:  # its creation is older than the history kept: rebuild what is known
            state.document = {}
        for path, (_, new) in changes.items():
            state.redacted -= {r for r in state.redacted if r == path or r.startswith(path + ".")}
            state.redacted.update(_redacted_paths(path, new))
            _assign(state.document, path, copy.deepcopy(new))
    return state


def _redacted_paths(path: str, value: Any) -> list[str]:
    """The paths at or under ``path`` whose value in ``value`` is the redaction marker (a
    sensitive field nested in a model that a change carries whole)."""
    if isinstance(value, str):
        return [path] if value == REDACTED else []
    if isinstance(value, Mapping):
        return [found for key, item in value.items() for found in _redacted_paths(f"{path}.{key}", item)]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _redacted_paths(f"{path}.{index}", item)]
    return []


def disagreements(state: Folded, stored: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """``{path: (rebuilt, stored)}`` where ``state`` differs from the ``stored`` document (``None``:
    no document), leaving out redacted paths and ``None`` against a missing key."""
    found = diff(state.document, stored)
    out: dict[str, tuple[Any, Any]] = {}
    for path, change in found.items():
        if change.old is None and change.new is None:
            continue
        if any(path == r or path.startswith(r + ".") or r.startswith(path + ".") for r in state.redacted):
            continue
        out[path] = change.as_pair()
    return out


def _assign(document: dict[str, Any], path: str, value: Any) -> None:
    """Set dotted ``path`` in ``document``, creating dicts (and growing lists) on the way; lenient
    where :func:`~.paths.assign_path` refuses (a stored history may pass through any shape)."""
    parts = path.split(".")
    current: Any = document
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(current, list) and part.isdigit():
            position = int(part)
            while len(current) <= position:
                current.append(None)
            if last:
                current[position] = value
            else:
                if not isinstance(current[position], (dict, list)):
                    current[position] = {}
                current = current[position]
        else:
            if last:
                current[part] = value
            else:
                if not isinstance(current.get(part), (dict, list)):
                    current[part] = {}
                current = current[part]
