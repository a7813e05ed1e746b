"""The per-process asyncio runtime of a worker and its start/stop hooks.

Celery runs tasks synchronously. Each worker process therefore owns ONE event loop, running
in a background thread for the whole life of the process (created when the process starts,
closed when it stops); async handlers are submitted to it and the task thread waits for the
result. Clients created on that loop (``AsyncMongoClient``, ``redis.asyncio``) stay usable
across tasks, and their background work (heartbeats, pools) keeps running between tasks.

Startup hooks run on that loop in every worker process before its first task — the place to
call ``await ormevents.init(...)`` or create clients:

Example::

    from ormevents.delivery.celery.runtime import on_worker_start, on_worker_stop

    @on_worker_start
    async def connect() -> None:
        await ormevents.init(mongo_uri=os.environ["MONGO_URL"], database="app")

    @on_worker_stop
    async def disconnect() -> None:
        await ormevents.close()
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

logger = logging.getLogger("ormevents.delivery.celery.runtime")

T = TypeVar("T")
Hook = Callable[[], Awaitable[None] | None]
H = TypeVar("H", bound=Hook)


class WorkerHooks:
    """The functions :func:`on_worker_start` / :func:`on_worker_stop` registered."""

    def __init__(self) -> None:
        self.start: list[Hook] = []
        self.stop: list[Hook] = []

    def clear(self) -> None:
        """Forget every hook."""
        self.start.clear()
        self.stop.clear()


hooks = WorkerHooks()


def on_worker_start(func: H) -> H:
    """Run ``func`` (sync or async, no arguments) in each worker process before its first task."""
    hooks.start.append(func)
    return func


def on_worker_stop(func: H) -> H:
    """Run ``func`` (sync or async, no arguments) in each worker process when it shuts down."""
    hooks.stop.append(func)
    return func


class WorkerLoop:
    """One event loop in a daemon thread; :meth:`run` executes a coroutine on it and waits.

    Example::

        loop = WorkerLoop()
        loop.start()
        assert loop.run(asyncio.sleep(0, "ok")) == "ok"
        loop.close()
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._started

    def start(self, start_hooks: list[Hook] | None = None) -> None:
        """Create the loop and its thread, then run ``start_hooks`` on it (idempotent)."""
        with self._lock:
            if self._started:
                return
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=serve, name="ormevents-loop", daemon=True)
            self._thread.start()
            ready.wait()
            self.loop = loop
            self._started = True
        for hook in start_hooks or ():
            self.call(hook)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result (raising what it raised).

        If the wait is interrupted (``timeout``, or Celery's ``SoftTimeLimitExceeded`` raised in
        this thread), the coroutine is cancelled too: it never keeps running behind a retry.
        """
        if not self._started or self.loop is None:
            coro.close()  # never awaited: close it so Python does not warn about it
            raise RuntimeError("the worker loop is not running: call start() first")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def call(self, func: Hook) -> None:
        """Call a sync or async no-argument hook (async ones run on the loop)."""
        result = func()
        if inspect.isawaitable(result):
            self.run(as_coroutine(result))

    def close(self, stop_hooks: list[Hook] | None = None, timeout: float = 10.0) -> None:
        """Run ``stop_hooks``, cancel what is left on the loop, stop and close it."""
        with self._lock:
            if not self._started or self.loop is None:
                return
            loop = self.loop
        for hook in stop_hooks or ():
            try:
                self.call(hook)
            except Exception:
                logger.exception("worker stop hook %r failed", hook)
        try:
            self.run(_cancel_pending(), timeout)
        except Exception:
            logger.exception("cancelling pending tasks of the worker loop failed")
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        loop.close()
        with self._lock:
            self._started = False
            self.loop = None


async def as_coroutine(awaitable: Awaitable[T]) -> T:
    """Wrap any awaitable in a coroutine (``run_coroutine_threadsafe`` takes only coroutines)."""
    return await awaitable


async def _cancel_pending() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
