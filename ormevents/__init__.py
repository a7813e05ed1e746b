"""ormevents: MongoDB models whose every write becomes an event, delivered through Celery.

The package reads in the order a write travels (see ``docs/architecture.md``): ``model/``
(EventModel, hooks, change tracking, storage) -> ``events/`` (the Event record, pure) ->
``delivery/`` (publishers: Celery, eager, recording) -> worker -> ``handlers/`` (registry,
retry: pure) -> ``jobs/`` (failed jobs, status); ``ops/`` (CLI, metrics, tracing),
``testing/`` (helpers for your tests), ``runtime.py`` (``init()``/``close()``) wires them.

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
from .changes.conditions import (
    AllOf,
    AnyOf,
    Changed,
    ChangesTo,
    Condition,
    IsNow,
    Not,
    Was,
)
from .changes.diff import ChangeSet, FieldChange
from .config import EventConfig
from .delivery.base import Publisher
from .delivery.celery.attach import attach_celery
from .delivery.celery.runtime import on_worker_start, on_worker_stop
from .delivery.recording import RecordingPublisher
from .errors import (
    BrokerUnavailableError,
    ChangeStreamHistoryLostError,
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    DocumentDeletedError,
    DocumentNotFoundError,
    DocumentTooLargeError,
    EventTooLargeError,
    HandlerRegistrationError,
    IdChangedError,
    IncompleteEventError,
    InvalidEventNameError,
    InvalidIdError,
    InvalidUpdateError,
    JobAlreadyRetriedError,
    JobNotFoundError,
    JobNotRetryableError,
    ModelDefinitionError,
    NotInitializedError,
    OrmEventsError,
    PublishError,
    TransactionAbortedError,
    UnknownHandlerError,
    UnknownModelError,
    UnserializableValueError,
)
from .events.event import Event
from .events.redaction import REDACTED, Sensitive
from .handlers.decorators import event_handler, model_event_handler
from .handlers.retry import PublishRetryPolicy, RetryPolicy
from .model.base import EventModel
from .model.bulk_common import BulkResult
from .model.context import event_metadata, hooks_disabled
from .model.dispatch import dispatch_model_event
from .model.meta import EventModelConfig
from .model.transaction import Transaction, transaction
from .model.types import ObjectIdField
from .model.watcher import watch
from .runtime import close, flush, get_runtime, init

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
    "attach_celery",
    "AnyOf",
    "BrokerUnavailableError",
    "BulkResult",
    "ChangeStreamHistoryLostError",
    "Changed",
    "ChangeSet",
    "ChangesTo",
    "close",
    "Condition",
    "ConfigurationError",
    "ConflictError",
    "DatabaseUnavailableError",
    "dispatch_model_event",
    "DocumentDeletedError",
    "DocumentNotFoundError",
    "DocumentTooLargeError",
    "Event",
    "event_metadata",
    "EventConfig",
    "EventModel",
    "EventModelConfig",
    "EventTooLargeError",
    "FieldChange",
    "flush",
    "get_runtime",
    "HandlerRegistrationError",
    "hooks_disabled",
    "init",
    "IdChangedError",
    "IncompleteEventError",
    "InvalidEventNameError",
    "InvalidIdError",
    "InvalidUpdateError",
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
    "Transaction",
    "transaction",
    "watch",
    "TransactionAbortedError",
    "UnknownHandlerError",
    "UnknownModelError",
    "UnserializableValueError",
    "Was",
]
