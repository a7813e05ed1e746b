"""Dotted field paths written and removed as MongoDB's ``$set`` / ``$unset`` do (pure, no I/O).

Shared by the update operators, the compare-and-set state of a write, the watcher's post-image
and the conditions' previous document. Containers along the path are replaced by shallow copies
before they are changed, so a document that shares containers with another (a shallow copy of a
stored form) can be changed without touching the other.

Example::

    >>> doc = {"tags": ["a"]}
    >>> assign_path(doc, "tags.3", "z")
    >>> doc
    {'tags': ['a', None, None, 'z']}
    >>> remove_path(doc, "tags.0")
    >>> doc
    {'tags': [None, None, None, 'z']}
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidUpdateError

_MISSING: Any = object()


def is_index(part: str) -> bool:
    """Whether path component ``part`` names an array element (ASCII digits only)."""
    return part.isascii() and part.isdigit()


def assign_path(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at dotted ``path`` of ``document``, as MongoDB stores it: missing objects are
    created, an array index past the end pads the array with ``None``. Raises
    :class:`~ormevents.errors.InvalidUpdateError` where MongoDB refuses: a non-numeric field of
    an array, or a path through a value that is neither an object nor an array (``null`` too)."""
    parts = path.split(".")
    node: Any = document
    for depth, part in enumerate(parts):
        key: Any = part
        if isinstance(node, list):
            if not is_index(part):
                raise InvalidUpdateError(f"cannot write {path!r}: {part!r} is not an index of the array there")
            key = int(part)
            if key >= len(node):
                node.extend([None] * (key + 1 - len(node)))
                if depth < len(parts) - 1:
                    node[key] = {}
        if depth == len(parts) - 1:
            node[key] = value
            return
        child = node[key] if isinstance(node, list) else node.get(key, _MISSING)
        if child is _MISSING:
            child = {}
        elif not isinstance(child, (dict, list)):
            raise InvalidUpdateError(f"cannot write {path!r}: {part!r} holds {child!r}, not a document or array")
        node[key] = node = _private(child)


def remove_path(document: dict[str, Any], path: str) -> None:
    """Remove dotted ``path`` from ``document`` as ``$unset`` does: a missing path is left alone,
    an array element becomes ``None`` (the array keeps its length)."""
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        if isinstance(node, list) and is_index(part) and int(part) < len(node):
            key: Any = int(part)
        elif isinstance(node, dict) and part in node:
            key = part
        else:
            return
        if not isinstance(node[key], (dict, list)):
            return
        node[key] = node = _private(node[key])
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and is_index(last) and int(last) < len(node):
        node[int(last)] = None


def _private(container: Any) -> Any:
    return dict(container) if isinstance(container, dict) else list(container)
