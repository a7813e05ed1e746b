"""The one error hierarchy of ormevents.

Every public entry point raises a subclass of :class:`OrmEventsError` (or a pydantic
``ValidationError`` for invalid field values, as pydantic users expect). Messages name the
problem and say what to do about it.
"""

from __future__ import annotations

from typing import Any


class OrmEventsError(Exception):
    """Base class of every error raised by ormevents."""


class ConfigurationError(OrmEventsError):
    """ormevents was configured wrongly (bad ``init()`` argument, missing setting)."""


class NotInitializedError(ConfigurationError):
    """A model or the bus was used before ``await ormevents.init(...)``."""


class ModelDefinitionError(OrmEventsError, TypeError):
    """A model class is defined wrongly (e.g. a hook condition names an unknown field)."""


class IdChangedError(OrmEventsError, ValueError):
    """The ``id`` of a saved instance was changed: a stored document's id never changes."""


class InvalidEventNameError(OrmEventsError):
    """An event name is not lowercase, dot-separated ``<model>.<action>`` text.

    Deliberately not a ``ValueError``: pydantic would wrap it into a ``ValidationError``.
    """


class UnserializableValueError(OrmEventsError, TypeError):
    """A value cannot be carried by an event's JSON codec; the message names its path."""


class DocumentNotFoundError(OrmEventsError, LookupError):
    """The document to update or delete is no longer in the database."""


class ConflictError(OrmEventsError):
    """A write expected values that another writer has changed since this instance read them.

    Nothing was written, no event was emitted, no after-hook ran and the instance is as it was
    before the call. ``document_id`` is the document's id; ``paths`` are the dotted paths whose
    stored values no longer match. Re-read and retry::

        except ConflictError:
            await doc.reload()      # then re-apply your change and save again
    """

    def __init__(self, message: str, document_id: Any = None, paths: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.document_id = document_id
        self.paths = tuple(paths)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.document_id, self.paths))


class InvalidIdError(OrmEventsError, ValueError):
    """A value given as a document id cannot be one (``User.get("not-an-id")``)."""


class DocumentDeletedError(OrmEventsError):
    """A write was attempted on an instance that was already deleted."""


class PublishError(OrmEventsError):
    """An event could not be handed to the broker."""


class BrokerUnavailableError(PublishError):
    """The broker (or Redis) could not be reached."""


class HandlerRegistrationError(OrmEventsError, TypeError):
    """A handler is registered wrongly (duplicate name, bad pattern, bad signature)."""


class JobNotFoundError(OrmEventsError, LookupError):
    """No failed job has that id."""


class JobAlreadyRetriedError(JobNotFoundError):
    """Another retry of that failed job was faster (it is being sent, or was sent): its new run is
    under way; follow it with ``get_event_status`` instead of retrying again."""


class JobNotRetryableError(OrmEventsError):
    """The failed job is a parked malformed message: there is no event to run again. Read it
    (``ormevents failed show``) and remove it."""


class InvalidFilterError(OrmEventsError, ValueError):
    """A failed-job filter or cursor is malformed (a bad date, an unknown cursor)."""


class InvalidUpdateError(OrmEventsError, ValueError):
    """A bulk or query write's update spec is malformed: an operator ormevents does not support, a
    field the model does not declare, or a value the operator cannot take. Raised before any write."""


class ChangeStreamHistoryLostError(OrmEventsError):
    """The change-stream watcher's stored resume token fell off the oplog: the writes made since
    the time it names were not seen and no event was emitted for them. Nothing is skipped
    silently: reconcile that period, then start the watcher with ``from_now=True``."""


class UnknownModelError(OrmEventsError, LookupError):
    """No model of that name has stored events (``ormevents events history``, ``replay``)."""


class UnknownHandlerError(OrmEventsError, LookupError):
    """No handler of that name is registered here, or no running worker has it (``replay``)."""


class IncompleteEventError(OrmEventsError, LookupError):
    """A handler's condition reads a field that an ``updated`` event does not carry (the write did
    not change it and the model's ``event_data`` does not name it)."""


class DatabaseUnavailableError(OrmEventsError):
    """MongoDB could not be reached (or stopped answering) during a write.

    The driver's error is the ``__cause__``. A write that failed this way may or may not have
    been applied: ``await doc.reload()`` before trying again. If it was applied, its event was
    recorded with it and is delivered; if not, nothing was recorded.
    """


class DocumentTooLargeError(OrmEventsError, ValueError):
    """The document (with its pending events) is over MongoDB's 16 MiB limit; nothing was written.

    ``fields`` lists the largest top-level fields as ``(name, bytes)``, largest first.
    """

    def __init__(self, message: str, fields: tuple[tuple[str, int], ...] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.fields))


class EventTooLargeError(OrmEventsError, ValueError):
    """An event's JSON is over the configured size (``event_config["max_event_bytes"]``, default
    1 MiB); raised before anything is written.

    ``size`` is the event's size in bytes, ``limit`` the limit, and ``fields`` the largest
    parts of the event as ``(path, bytes)``, largest first (``data.avatar``, ``changes.bio``).
    """

    def __init__(self, message: str, size: int = 0, limit: int = 0,
                 fields: tuple[tuple[str, int], ...] = ()) -> None:
        super().__init__(message)
        self.size, self.limit, self.fields = size, limit, tuple(fields)

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.size, self.limit, self.fields))


class TransactionAbortedError(OrmEventsError):
    """A transaction was aborted by a transient error (a write conflict with another
    transaction, a primary step-down) and could not be committed within the retry time.

    Nothing it wrote or emitted remains. The driver's error is the ``__cause__``. Run the work
    again, or let :meth:`ormevents.transaction` ``.run(fn)`` retry it for you.
    """
