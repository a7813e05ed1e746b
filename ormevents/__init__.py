"""ormevents: MongoDB models whose every write becomes an event, delivered through Celery.

Quick look::

    from ormevents import EventModel, init
    from ormevents.hooks import after_update

    class User(EventModel):
        username: str
        status: str = "inactive"

        @after_update(when="status", changes_to="active")
        async def greet(self) -> None: ...

    await init(mongo_uri="mongodb://localhost:27017", database="app")
    user = await User.create(username="ann")     # emits user.created
    await user.update(status="active")           # emits user.updated, runs greet()
"""

from __future__ import annotations

from .bus import EventBus, event_bus
from .changes import ChangeSet, FieldChange
from .conditions import AllOf, AnyOf, Changed, ChangesTo, Condition, IsNow, Not, Was
from .config import EventConfig
from .context import event_metadata, hooks_disabled
from .errors import (
    BrokerUnavailableError,
    ConfigurationError,
    DocumentDeletedError,
    DocumentNotFoundError,
    HandlerRegistrationError,
    IdChangedError,
    InvalidEventNameError,
    JobAlreadyRetriedError,
    JobNotFoundError,
    JobNotRetryableError,
    ModelDefinitionError,
    NotInitializedError,
    OrmEventsError,
    PublishError,
    UnserializableValueError,
)
from .events import Event
from .handlers import event_handler, model_event_handler
from .model import EventModel, EventModelConfig
from .model_events import dispatch_model_event
from .publishing import Publisher, RecordingPublisher
from .redaction import REDACTED, Sensitive
from .retry import PublishRetryPolicy, RetryPolicy
from .runtime import close, get_runtime, init
from .celery.runtime import on_worker_start, on_worker_stop
from .types import ObjectIdField

__all__ = [
    "event_bus",
    "event_handler",
    "EventBus",
    "model_event_handler",
    "on_worker_start",
    "on_worker_stop",
    "PublishRetryPolicy",
    "RetryPolicy",
    "AllOf",
    "AnyOf",
    "BrokerUnavailableError",
    "Changed",
    "ChangeSet",
    "ChangesTo",
    "close",
    "Condition",
    "ConfigurationError",
    "dispatch_model_event",
    "DocumentDeletedError",
    "DocumentNotFoundError",
    "Event",
    "event_metadata",
    "EventConfig",
    "EventModel",
    "EventModelConfig",
    "FieldChange",
    "get_runtime",
    "HandlerRegistrationError",
    "hooks_disabled",
    "init",
    "IdChangedError",
    "InvalidEventNameError",
    "IsNow",
    "JobAlreadyRetriedError",
    "JobNotFoundError",
    "JobNotRetryableError",
    "ModelDefinitionError",
    "Not",
    "NotInitializedError",
    "ObjectIdField",
    "OrmEventsError",
    "Publisher",
    "PublishError",
    "RecordingPublisher",
    "REDACTED",
    "Sensitive",
    "UnserializableValueError",
    "Was",
]
