"""Handlers: the registry events are matched against, the decorators that fill it, retry
policies and what a handler's result means (pure: no driver, no Redis, no Celery).

Imported by the delivery side (workers, the eager publisher) and by users' handler modules.

Example::

    from ormevents.handlers import event_handler, registry
"""

from __future__ import annotations

from .decorators import event_handler, model_event_handler
from .registry import Handler, HandlerRegistry, change_context, registry
from .retry import PublishRetryPolicy, RetryPolicy

__all__ = ["Handler", "HandlerRegistry", "PublishRetryPolicy", "RetryPolicy", "change_context", "event_handler",
           "model_event_handler", "registry"]
