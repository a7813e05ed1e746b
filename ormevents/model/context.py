"""Per-task switches kept in ``contextvars`` (safe across asyncio tasks, unlike thread-locals).

* :func:`hooks_disabled` skips lifecycle hooks of some (or all) models inside a block;
* :func:`event_metadata` adds metadata (actor, correlation id...) to every event emitted
  inside a block.

Both work with ``with`` and ``async with`` and nest; a task started inside the block
inherits the setting (asyncio copies the context), a task started elsewhere does not.

The write path keeps here, the same way, which instances' after-hooks this task is running and
for which write (:func:`running_after_hooks`): a save made inside an after-hook runs no hooks,
and ``saved_changes`` there is the hook's write, while another task saving the same instance
at that moment is unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from ..changes.diff import ChangeSet

_ALL = object()
_disabled: ContextVar[frozenset[Any]] = ContextVar("ormevents_hooks_disabled", default=frozenset())
_metadata: ContextVar[MappingProxyType[str, Any]] = ContextVar(
    "ormevents_event_metadata", default=MappingProxyType({})
)
_after_hooks: ContextVar[MappingProxyType[int, ChangeSet]] = ContextVar(
    "ormevents_after_hooks", default=MappingProxyType({})
)


class _SyncAndAsync:
    """Turns a generator-based context manager into one usable with ``with`` and ``async with``."""

    def __init__(self, factory: Any) -> None:
        self._manager = factory()

    def __enter__(self) -> None:
        self._manager.__enter__()

    def __exit__(self, *exc: Any) -> bool | None:
        return self._manager.__exit__(*exc)

    async def __aenter__(self) -> None:
        self._manager.__enter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        return self._manager.__exit__(*exc)


def hooks_disabled(*models: type) -> _SyncAndAsync:
    """Skip the lifecycle hooks of ``models`` (and their subclasses), or of every model if none given.

    Events are still emitted. Example::

        async with hooks_disabled(User):
            await user.update(status="imported")
    """

    @contextmanager
    def manager() -> Iterator[None]:
        token = _disabled.set(_disabled.get() | (frozenset(models) if models else frozenset({_ALL})))
        try:
            yield
        finally:
            _disabled.reset(token)

    return _SyncAndAsync(manager)


def hooks_are_disabled(model: type) -> bool:
    """True inside a :func:`hooks_disabled` block that covers ``model``."""
    disabled = _disabled.get()
    return bool(disabled) and (_ALL in disabled or any(issubclass(model, m) for m in disabled))


def event_metadata(**metadata: Any) -> _SyncAndAsync:
    """Add ``metadata`` to every event emitted inside the block (inner blocks win on conflicts).

    Example::

        with event_metadata(actor="admin", correlation_id=request_id):
            await user.update(status="banned")
    """

    @contextmanager
    def manager() -> Iterator[None]:
        token = _metadata.set(MappingProxyType({**_metadata.get(), **metadata}))
        try:
            yield
        finally:
            _metadata.reset(token)

    return _SyncAndAsync(manager)


def current_metadata() -> dict[str, Any]:
    """The metadata set by the enclosing :func:`event_metadata` blocks."""
    return dict(_metadata.get())


@contextmanager
def running_after_hooks(instance: object, changes: ChangeSet) -> Iterator[None]:
    """Inside the block, this task runs after-hooks of ``instance`` for a write of ``changes``
    (nests: an inner block wins until it ends). The instance is alive while its hooks run, so
    its ``id`` names it."""
    token = _after_hooks.set(MappingProxyType({**_after_hooks.get(), id(instance): changes}))
    try:
        yield
    finally:
        _after_hooks.reset(token)


def after_hook_changes(instance: object) -> ChangeSet | None:
    """The changes of the write whose after-hooks this task is running for ``instance``, or
    ``None`` outside them."""
    return _after_hooks.get().get(id(instance))
