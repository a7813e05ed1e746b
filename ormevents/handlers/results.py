"""What a handler returned: chained events (with deterministic ids) and the JSON value kept.

Example::

    >>> parent = Event(name="signup.done")
    >>> children, kept = split_result([{"name": "email.sent", "payload": {"to": "a"}}], parent, "h")
    >>> [c.name for c in children], kept == {"published": [str(children[0].id)]}
    (['email.sent'], True)
"""

from __future__ import annotations

import uuid
from typing import Any

from ..events.codec import to_plain
from ..events.event import Event


def split_result(result: Any, parent: Event, handler: str) -> tuple[list[Event], Any]:
    """Chained events a handler returned (with deterministic ids) and the JSON value to keep."""
    items: list[Any]
    if isinstance(result, Event):
        items = [result]
    elif isinstance(result, list) and result and all(_is_event_like(item) for item in result):
        items = result
    else:
        return [], to_plain_json(result)
    children = []
    for index, item in enumerate(items):
        base = item if isinstance(item, Event) else Event(name=item["name"], data=item.get("payload") or item.get("data") or {})
        child_id = uuid.uuid5(parent.id, f"{handler}:{index}")
        metadata = {**base.metadata, "causation_id": str(parent.id),
                    "correlation_id": parent.metadata.get("correlation_id", str(parent.id))}
        children.append(base.model_copy(update={"id": child_id, "metadata": to_plain(metadata)}))
    return children, {"published": [str(child.id) for child in children]}


def _is_event_like(item: Any) -> bool:
    return isinstance(item, Event) or (isinstance(item, dict) and isinstance(item.get("name"), str))


def to_plain_json(value: Any) -> Any:
    """``value`` as JSON data (tagged codec for rich values); errors name the bad path."""
    from ..events.codec import encode

    return encode(to_plain(value))


def qualname(exc_type: type[BaseException]) -> str:
    """The dotted name failed jobs record as ``error_type`` (``builtins.ValueError``)."""
    return f"{exc_type.__module__}.{exc_type.__qualname__}"
