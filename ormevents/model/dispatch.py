"""``dispatch_model_event``: the EarnORM-style helper to emit a model event by hand."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..delivery.base import Publisher
from ..errors import ConfigurationError
from ..events.event import Event, validate_action
from ..events.naming import snake_case
from ..runtime import get_runtime

if TYPE_CHECKING:
    from ..bus import EventBus


async def dispatch_model_event(
    bus: Publisher | EventBus | None,
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

    ``instance_or_data`` is an :class:`~ormevents.model.base.EventModel` (its document, redacted,
    becomes ``data``), a mapping, or ``None``. With an instance, ``model`` must be its class
    (or class name) and ``object_id`` its id (or ``None``), else :class:`ConfigurationError`.
    Returns the published event. Example::

        await dispatch_model_event(event_bus, User, "welcome_email", user.id, user, delay=60)
    """
    validate_action(action)
    prefix = snake_case(model if isinstance(model, str) else model.__name__)
    meta = getattr(type(instance_or_data), "__ormevents__", None)
    if meta is not None:
        wrong_class = isinstance(model, type) and model is not type(instance_or_data)
        if wrong_class or (isinstance(model, str) and prefix != meta.event_prefix):
            raise ConfigurationError(
                f"dispatch_model_event: model {getattr(model, '__name__', model)!r} does not match the instance, "
                f"a {type(instance_or_data).__name__}"
            )
        if object_id is not None and str(object_id) != str(instance_or_data.id):
            raise ConfigurationError(
                f"dispatch_model_event: object_id {object_id!r} is not the instance's id {instance_or_data.id!r}"
            )
        event = instance_or_data.build_event(action, metadata=metadata)
    else:
        event = Event(name=f"{prefix}.{action}", object_id=object_id, data=dict(instance_or_data or {}),
                      metadata=metadata or {})
    await (bus or get_runtime().publisher).publish(event, delay=delay, eta=eta)
    return event
