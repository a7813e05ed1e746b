"""``@event_handler`` and ``@model_event_handler``: register functions as handlers of events.

Registration errors (duplicate name, bad pattern, bad signature, bad condition, bad queue)
raise :class:`~ormevents.errors.HandlerRegistrationError` at import time, never at delivery.

A handler takes the event (or its data as a pydantic model, see
:mod:`ormevents.handlers.registry`) and, to opt in to exactly-once effects on MongoDB, a second
parameter: the session of the transaction its inbox record commits in. The session is passed
when the second positional parameter is required, or is named ``session`` (a default such as
``session=None`` keeps the function callable with the event alone in tests). Other parameters
must have defaults.

Example::

    >>> from ormevents.handlers.registry import HandlerRegistry
    >>> registry = HandlerRegistry()
    >>> @event_handler("user.updated", when="status", changes_to="active", registry=registry)
    ... def activate(event: Event) -> None: ...
    >>> e = Event(name="user.updated", data={"status": "active"}, changes={"status": ("new", "active")})
    >>> [h.name for h in registry.match(e)]
    ['ormevents.handlers.decorators:activate']
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar, Unpack

from pydantic import BaseModel

from ..changes.conditions import ConditionKeywords, build_condition
from ..errors import HandlerRegistrationError, OrmEventsError
from ..events.event import Event
from ..events.naming import snake_case
from ..events.patterns import Pattern
from .registry import Handler, HandlerRegistry, describe
from .registry import registry as default_registry
from .retry import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])


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
    target = registry if registry is not None else default_registry

    def decorate(func: F) -> F:
        payload_model, wants_session = _check_signature(func)
        target.add(
            Handler(
                name=name or describe(func),
                pattern=compiled,
                func=func,
                is_async=inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None)),
                condition=cond,
                retry=policy,
                payload_model=payload_model,
                queue=queue,
                wants_session=wants_session,
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


def _check_signature(func: Any) -> tuple[type[BaseModel] | None, bool]:
    """The payload model of ``func``'s first parameter (if any) and whether it takes a session."""
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
    if not positional or len(required) > 2 or any(p not in positional[:2] for p in required) or (
        len(required) == 1 and required[0] is not positional[0]
    ):
        raise HandlerRegistrationError(
            f"handler {describe(func)} must take the event as its one required positional parameter, "
            f"and optionally a MongoDB session as its second (event, session); got {signature}"
        )
    wants_session = len(positional) > 1 and (positional[1].default is positional[1].empty
                                             or positional[1].name == "session")
    try:
        hints = typing.get_type_hints(func if inspect.isroutine(func) else type(func).__call__)
    except Exception as exc:
        raise HandlerRegistrationError(
            f"cannot resolve the annotations of handler {describe(func)}: {exc}; "
            "import the annotated types at module level"
        ) from None
    annotation = hints.get(positional[0].name)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not issubclass(annotation, Event):
        return annotation, wants_session
    return None, wants_session
