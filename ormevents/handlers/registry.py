"""Registered handlers: :class:`Handler` and the :class:`HandlerRegistry` events are matched against.

A handler is a function of one argument (the event), sync or ``async``, registered under a
stable name (default ``module:qualname``) for an event-name pattern (see
:mod:`ormevents.events.patterns`) and an optional condition on the event's changes (same keywords
as model hooks, see :func:`ormevents.changes.conditions.build_condition`). A handler that takes a
second parameter, the MongoDB session, opts in to exactly-once effects (``wants_session``: the
worker runs it in a transaction with its inbox record, see :mod:`ormevents.delivery.celery.inbox`).
The decorators that fill the registry live in :mod:`ormevents.handlers.decorators`.

The argument is the :class:`~ormevents.events.event.Event`, unless the parameter is annotated
with a pydantic model class (other than ``Event``): then it is ``Model.model_validate(event.data)``.

Example::

    >>> registry = HandlerRegistry()
    >>> handler = Handler("audit", Pattern.compile("user.*"), print, is_async=False)
    >>> registry.add(handler).name, [h.name for h in registry.match(Event(name="user.created"))]
    ('audit', ['audit'])
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..changes.conditions import ChangeContext, Condition
from ..changes.diff import ChangeSet, FieldChange
from ..errors import HandlerRegistrationError
from ..events.event import Event
from ..events.patterns import Pattern
from .results import qualname
from .retry import RetryPolicy


NAMES_REMEMBERED = 4096
"""How many event names a registry remembers the listening handlers of (a dispatch matches the
patterns once per name, not once per event)."""


@dataclass(frozen=True)
class Handler:
    """One registered handler: what it listens to and how it is called."""

    name: str
    pattern: Pattern
    func: Callable[..., Any]
    is_async: bool
    condition: Condition | None = None
    retry: RetryPolicy | None = None
    payload_model: type[BaseModel] | None = None
    queue: str | None = None
    """The broker queue this handler's runs (and retries) go to; ``None``: the event queue."""
    wants_session: bool = False
    """Called as ``func(argument, session)`` inside a MongoDB transaction (exactly-once effect)."""

    def wants(self, event: Event) -> bool:
        """True if ``event`` matches the pattern and the condition (if any) holds."""
        if not self.pattern.matches(event.name):
            return False
        return self.condition is None or self.condition(change_context(event))

    def argument(self, event: Event) -> Any:
        """What the handler is called with: the event, or its data as ``payload_model``."""
        if self.payload_model is None:
            return event
        return self.payload_model.model_validate(event.data)


def change_context(event: Event) -> ChangeContext:
    """The :class:`ChangeContext` conditions see for ``event`` (its changes and data); an
    ``updated`` event's data holds only the fields it carries (``partial``)."""
    changes = ChangeSet({path: FieldChange(old, new) for path, (old, new) in event.changes.items()})
    return ChangeContext(changes=changes, current=event.data,
                         partial=event.name if event.action == "updated" else None)


@dataclass(frozen=True)
class Selection:
    """What :meth:`HandlerRegistry.select` found for one event."""

    handlers: list[Handler]
    """The handlers the event goes to, in registration order."""
    broken: list[tuple[Handler, Exception]]
    """The handlers whose pattern matched and whose condition raised, with the exception."""


def condition_failure(error: Exception) -> tuple[str, str, str]:
    """The failed job's ``error_type``, ``error_message`` and ``traceback`` for a handler whose
    condition raised ``error`` (reason ``condition_error``; the same in a worker and eager mode)."""
    message = (f"the handler's condition raised on this event, so the handler did not run: {error}. Fix the "
               "condition (or the model's event_data), then retry this job: the retry evaluates the condition again")
    return qualname(type(error)), message, "".join(traceback.format_exception(error))


class HandlerRegistry:
    """Handlers by name, in registration order.

    The decorators register into :data:`registry` unless given ``registry=``; tests can call
    :meth:`clear` or use their own instance.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._by_name: dict[str, list[Handler]] = {}  # event name -> handlers whose pattern matches it

    def add(self, handler: Handler) -> Handler:
        """Register ``handler``; raise :class:`HandlerRegistrationError` if the name is taken."""
        existing = self._handlers.get(handler.name)
        if existing is not None and existing.func is not handler.func:
            raise HandlerRegistrationError(
                f"a handler named {handler.name!r} is already registered "
                f"(by {describe(existing.func)}); pass name='...' to give this one another name"
            )
        self._handlers[handler.name] = handler
        self._by_name = {}
        return handler

    def get(self, name: str) -> Handler | None:
        """The handler called ``name``, or ``None``."""
        return self._handlers.get(name)

    def match(self, event: Event) -> list[Handler]:
        """The handlers ``event`` goes to (pattern matches and condition holds); those whose
        condition raises are left out (:meth:`select` names them)."""
        return self.select(event).handlers

    def select(self, event: Event) -> Selection:
        """The handlers ``event`` goes to, and those whose condition raised on it (a delivery
        parks each of those as a failed job, reason ``condition_error``)."""
        selection = Selection([], [])
        context: ChangeContext | None = None  # built once, for the first handler with a condition
        for handler in self._listening(event.name):
            if handler.condition is None:
                selection.handlers.append(handler)
                continue
            try:
                if context is None:
                    context = change_context(event)
                if handler.condition(context):
                    selection.handlers.append(handler)
            except Exception as error:  # a broken condition must not starve the other handlers
                selection.broken.append((handler, error))
        return selection

    def _listening(self, event_name: str) -> list[Handler]:
        """The handlers whose pattern matches ``event_name``, in registration order; remembered per
        name (at most :data:`NAMES_REMEMBERED`), forgotten when a handler is added or removed."""
        remembered = self._by_name  # an add() meanwhile replaces it: what is found here is not kept
        found = remembered.get(event_name)
        if found is None:
            if len(remembered) >= NAMES_REMEMBERED:
                remembered = self._by_name = {}
            found = [handler for handler in self._handlers.values() if handler.pattern.matches(event_name)]
            remembered[event_name] = found
        return found

    def names(self) -> list[str]:
        """Every registered handler name, in registration order."""
        return list(self._handlers)

    def remove(self, name: str) -> None:
        """Forget the handler ``name`` (no error if absent)."""
        self._handlers.pop(name, None)
        self._by_name = {}

    def clear(self) -> None:
        """Forget every handler."""
        self._handlers.clear()
        self._by_name = {}

    def __len__(self) -> int:
        return len(self._handlers)


registry = HandlerRegistry()
"""The default registry the decorators use (the worker dispatches from it)."""


def describe(func: Any) -> str:
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{getattr(func, '__module__', None) or type(func).__module__}:{qualname}"
