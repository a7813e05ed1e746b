"""``dispatch_model_event``: the EarnORM-style helper to emit a model event by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .events import Event, validate_action
from .naming import snake_case
from .publishing import Publisher
from .runtime import get_runtime


async def dispatch_model_event(
    bus: Publisher | None,
    model: type | str,
    action: str,
    object_id: Any,
    instance_or_data: Any = None,
    *,
    metadata: dict[str, Any] | None = None,
    delay: float | None = None,
    eta: datetime | None = None,
) -> Event:
    """Publish ``<model>.<action>`` for ``object_id`` through ``bus`` (``None``: the runtime's publisher).

    ``instance_or_data`` is an :class:`~ormevents.model.EventModel` (its document, redacted,
    becomes ``data``), a mapping, or ``None``. Returns the published event. Example::

        await dispatch_model_event(event_bus, User, "welcome_email", user.id, user, delay=60)
    """
    validate_action(action)
    prefix = snake_case(model if isinstance(model, str) else model.__name__)
    if hasattr(instance_or_data, "emit") and hasattr(type(instance_or_data), "__ormevents__"):
        return await instance_or_data.emit(action, metadata=metadata, delay=delay, eta=eta)
    event = Event(
        name=f"{prefix}.{action}",
        object_id=object_id,
        data=dict(instance_or_data or {}),
        metadata=metadata or {},
    )
    await (bus or get_runtime().publisher).publish(event, delay=delay, eta=eta)
    return event
