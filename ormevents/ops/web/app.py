"""The dashboard's ASGI app: :func:`create_app` assembles the routes, the guard and the templates.

One :class:`Dashboard` per app holds the queue's settings and its (sync) Redis clients; every
Redis or broker call of a request runs on a worker thread (``run_in_threadpool``), so a slow
Redis never stalls the event loop that serves the pages (or the host app's other routes).

Errors become pages with the right status: an unknown job or event 404, a bad filter or cursor
400, a job that cannot be retried or was retried by someone else 409, Redis or the broker out
of reach 503 (one line saying which URL), a missing CSRF token 403.

Imported by :mod:`ormevents.web` (the public entry point) and the ``ormevents web`` command.

Example::

    app = create_app(DeliverySettings(redis_url="redis://localhost:6379/0", queue_name="shop:events"),
                     auth=WebAuth(token="a-long-random-token-here"))
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ...delivery.celery.config import DeliverySettings
from ...urls import redact_url
from ...errors import (
    BrokerUnavailableError,
    InvalidFilterError,
    JobAlreadyRetriedError,
    JobNotFoundError,
    JobNotRetryableError,
)
from ...jobs.redis_store import FailedJobStore
from . import actions, views
from .render import HERE, templates
from .security import Guard, WebAuth

T = TypeVar("T")


class Dashboard:
    """The state of one dashboard app: settings, Redis client, failed-job store, retry operations."""

    def __init__(self, settings: DeliverySettings, *, refresh: float = 5.0, title: str = "ormevents") -> None:
        self.settings = settings
        self.refresh = refresh
        self.title = title
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
        self.store = FailedJobStore(self.redis, settings.queue_name)
        self._requeue: Any = None
        self._lock = threading.Lock()

    @property
    def requeue(self) -> Any:
        """The :class:`~ormevents.delivery.celery.requeue.Requeue` of this queue (Celery loads on first use)."""
        with self._lock:
            if self._requeue is None:
                from ...delivery.celery.app import create_app as celery_app
                from ...delivery.celery.requeue import Requeue
                from ...delivery.celery.scheduler import RedisSchedule
                from ...delivery.celery.sending import Sender

                sender = Sender(celery_app(self.settings, main="ormevents-web"),
                                RedisSchedule(self.redis, self.settings.keys), self.settings)
                self._requeue = Requeue(self.store, sender, status_ttl=self.settings.status_ttl)
            return self._requeue

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on a worker thread (Redis and broker calls never run on the loop)."""
        return await run_in_threadpool(func, *args)

    def close(self) -> None:
        """Release the Redis connections and the retry sender's Celery app."""
        self.redis.close()
        if self._requeue is not None:
            self._requeue.sender.app.close()


def create_app(settings: DeliverySettings, *, auth: WebAuth | None = None, secret: str | bytes | None = None,
               refresh: float = 5.0, title: str = "ormevents") -> Starlette:
    """The dashboard of ``settings``' queue as a Starlette app (see :mod:`ormevents.web`).

    ``auth``: see :class:`~ormevents.ops.web.security.WebAuth` (none: local requests only);
    ``secret`` signs the CSRF tokens (default: random per app; give the same one to every
    process serving the dashboard behind a load balancer); ``refresh``: seconds between live
    updates of a page (0: never).
    """
    dashboard = Dashboard(settings, refresh=refresh, title=title)
    key = secret.encode() if isinstance(secret, str) else (secret or secrets.token_bytes(32))
    routes = [
        Route("/", views.overview_page, name="overview"),
        Route("/failed", views.failed_page, name="failed"),
        Route("/failed/job/{job_id:path}", views.job_page, name="job"),
        Route("/failed/{action:str}-all", actions.bulk, methods=["GET", "POST"], name="bulk"),
        Route("/failed/{action:str}/{job_id:path}", actions.one_job, methods=["GET", "POST"], name="one_job"),
        Route("/events/{event_id:str}", views.event_page, name="event"),
        Route("/delayed", views.delayed_page, name="delayed"),
        Route("/delayed/cancel/{event_id:str}", actions.cancel, methods=["GET", "POST"], name="cancel"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    handlers: dict[Any, Callable[..., Any]] = {
        HTTPException: _error(None),
        JobAlreadyRetriedError: _error(409),
        JobNotFoundError: _error(404),
        JobNotRetryableError: _error(409),
        InvalidFilterError: _error(400),
        BrokerUnavailableError: _error(503),
        redis.ConnectionError: _error(503, redis_url=settings.redis_url),
        redis.TimeoutError: _error(503, redis_url=settings.redis_url),
    }
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield  # a mounted app gets no lifespan events: its connections go with the process
        await run_in_threadpool(dashboard.close)

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan,
                    middleware=[Middleware(Guard, auth=auth or WebAuth(), secret=key)])
    app.state.dashboard = dashboard
    app.state.templates = templates()
    return app


def _error(status: int | None, redis_url: str | None = None) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> Response:
        code: int = status or int(getattr(exc, "status_code", None) or 500)
        message = str(getattr(exc, "detail", "") or exc)
        if redis_url is not None:
            message = f"cannot reach Redis at {redact_url(redis_url)}: {exc}"
        return views.render(request, "error.html", {"status": code, "message": message}, status_code=code)

    return handle
