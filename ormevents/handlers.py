"""Event handlers: the ``@event_handler`` / ``@model_event_handler`` decorators and their registry.

A handler is a function of one argument, sync or ``async``, registered under a stable name
(default ``module:qualname``) for an event-name pattern (see :mod:`ormevents.patterns`) and
an optional condition on the event's changes (same keywords as model hooks, see
:func:`ormevents.conditions.build_condition`). Registration errors (duplicate name, bad
pattern, bad signature, bad condition) raise :class:`HandlerRegistrationError` at import time.

The argument is the :class:`~ormevents.events.Event`, unless the parameter is annotated with
a pydantic model class (other than ``Event``): then it is ``Model.model_validate(event.data)``.

Example::

    >>> registry = HandlerRegistry()
    >>> @event_handler("user.updated", when="status", changes_to="active", registry=registry)
    ... def activate(event: Event) -> None: ...
    >>> e = Event(name="user.updated", data={"status": "active"}, changes={"status": ("new", "active")})
    >>> [h.name for h in registry.match(e)]
    ['ormevents.handlers:activate']
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, Unpack

from pydantic import BaseModel

from .changes import ChangeSet, FieldChange
from .conditions import ChangeContext, Condition, ConditionKeywords, build_condition
from .errors import HandlerRegistrationError, OrmEventsError
from .events import Event
from .naming import snake_case
from .patterns import Pattern
from .retry import RetryPolicy

logger = logging.getLogger("ormevents.handlers")

F = TypeVar("F", bound=Callable[..., Any])


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
    """The :class:`ChangeContext` conditions see for ``event`` (its changes and data)."""
    changes = ChangeSet({path: FieldChange(old, new) for path, (old, new) in event.changes.items()})
    return ChangeContext(changes=changes, current=event.data)


class HandlerRegistry:
    """Handlers by name, in registration order.

    The decorators register into :data:`registry` unless given ``registry=``; tests can call
    :meth:`clear` or use their own instance.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def add(self, handler: Handler) -> Handler:
        """Register ``handler``; raise :class:`HandlerRegistrationError` if the name is taken."""
        existing = self._handlers.get(handler.name)
        if existing is not None and existing.func is not handler.func:
            raise HandlerRegistrationError(
                f"a handler named {handler.name!r} is already registered "
                f"(by {_describe(existing.func)}); pass name='...' to give this one another name"
            )
        self._handlers[handler.name] = handler
        return handler

    def get(self, name: str) -> Handler | None:
        """The handler called ``name``, or ``None``."""
        return self._handlers.get(name)

    def match(self, event: Event) -> list[Handler]:
        """The handlers ``event`` goes to (pattern matches and condition holds)."""
        selected = []
        for handler in self._handlers.values():
            try:
                if handler.wants(event):
                    selected.append(handler)
            except Exception:  # a broken condition must not starve the other handlers
                logger.exception("condition of handler %s failed on event %s; skipping it", handler.name, event.id)
        return selected

    def names(self) -> list[str]:
        """Every registered handler name, in registration order."""
        return list(self._handlers)

    def remove(self, name: str) -> None:
        """Forget the handler ``name`` (no error if absent)."""
        self._handlers.pop(name, None)

    def clear(self) -> None:
        """Forget every handler."""
        self._handlers.clear()

    def __len__(self) -> int:
        return len(self._handlers)


registry = HandlerRegistry()
"""The default registry the decorators use (the worker dispatches from it)."""


def event_handler(
    pattern: str,
    *,
    name: str | None = None,
    retry: RetryPolicy | dict[str, Any] | None = None,
    queue: str | None = None,
    registry: HandlerRegistry | None = None,
    **conditions: Unpack[ConditionKeywords],
) -> Callable[[F], F]:
    """Register the decorated function as a handler of events matching ``pattern``.

    Condition keywords are those of model hooks; a handler whose condition is false for an
    event is not scheduled at all. ``retry`` overrides the default execution retry policy.
    ``queue`` routes this handler's runs and retries to that broker queue (workers consume it
    with ``-Q``); by default they share the event queue (``event_config["queue_name"]``).
    The function is returned unchanged (still callable directly in tests).

    Example::

        @event_handler("user.*", retry=RetryPolicy(max_retries=8, backoff="exponential", jitter=True))
        async def audit(event: Event) -> None: ...
    """
    compiled = Pattern.compile(pattern)
    try:
        cond = build_condition(**conditions)
    except (OrmEventsError, TypeError) as exc:
        raise HandlerRegistrationError(f"handler for {pattern!r}: {exc}") from None
    policy = RetryPolicy.model_validate(retry) if isinstance(retry, dict) else retry
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise HandlerRegistrationError(f"retry= takes a RetryPolicy or a mapping of its fields, got {retry!r}")
    if queue is not None and (not isinstance(queue, str) or not queue.strip() or queue != queue.strip()):
        raise HandlerRegistrationError(f"handler for {pattern!r}: queue= takes a non-empty queue name, got {queue!r}")
    target = registry if registry is not None else globals()["registry"]

    def decorate(func: F) -> F:
        payload_model = _check_signature(func)
        target.add(
            Handler(
                name=name or _describe(func),
                pattern=compiled,
                func=func,
                is_async=inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None)),
                condition=cond,
                retry=policy,
                payload_model=payload_model,
                queue=queue,
            )
        )
        return func

    return decorate


def model_event_handler(model: str | type, action: str, **options: Any) -> Callable[[F], F]:
    """``@event_handler("<model>.<action>")`` with the model given by class or class name.

    ``"User"`` and ``User`` both mean the ``user.*`` events of the ``User`` model
    (``OrderItem`` -> ``order_item``). Takes the same keywords as :func:`event_handler`.

    Example::

        @model_event_handler("User", "created")
        def audit(event: Event) -> dict: ...
    """
    if isinstance(model, type):
        meta = getattr(model, "__ormevents__", None)
        prefix = getattr(meta, "event_prefix", None) or snake_case(model.__name__)
    elif isinstance(model, str) and model:
        prefix = snake_case(model)
    else:
        raise HandlerRegistrationError(f"model_event_handler takes a model class or name, got {model!r}")
    return event_handler(f"{prefix}.{action}", **options)


def _check_signature(func: Any) -> type[BaseModel] | None:
    if not callable(func):
        raise HandlerRegistrationError(f"a handler must be a function, got {func!r}")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise HandlerRegistrationError(f"cannot inspect handler {func!r}: {exc}") from None
    positional = [
        p for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [
        p for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if not positional or len(required) > 1 or (required and required[0] is not positional[0]):
        raise HandlerRegistrationError(
            f"handler {_describe(func)} must take exactly one required positional parameter "
            f"(the event), got {signature}"
        )
    try:
        hints = typing.get_type_hints(func if inspect.isroutine(func) else type(func).__call__)
    except Exception as exc:
        raise HandlerRegistrationError(
            f"cannot resolve the annotations of handler {_describe(func)}: {exc}; "
            "import the annotated types at module level"
        ) from None
    annotation = hints.get(positional[0].name)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not issubclass(annotation, Event):
        return annotation
    return None


def _describe(func: Any) -> str:
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{getattr(func, '__module__', None) or type(func).__module__}:{qualname}"
