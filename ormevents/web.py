"""The dashboard, as an ASGI app to run or to mount in your own (``pip install 'ormevents[web]'``).

Run it: ``ormevents web --redis-url redis://localhost:6379/0 --queue shop:events`` (127.0.0.1:8765).
Mount it in a Starlette or FastAPI app, behind your app's own authentication::

    import ormevents.web

    api.mount("/ormevents", ormevents.web.app(redis_url="redis://localhost:6379/0",
                                              queue="shop:events", host_auth=True))

or with its own: ``token="..."`` (16+ characters; browsers open ``/ormevents/?token=...`` once)
or ``basic_auth="user:password"``. Without any, it answers only requests from a loopback address.
See ``docs/dashboard.md`` and :mod:`ormevents.ops.web`.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import ConfigurationError


def app(*, redis_url: str | None = None, queue: str | None = None, broker_url: str | None = None,
        token: str | None = None, basic_auth: str | None = None, host_auth: bool = False,
        secret: str | None = None, refresh: float = 5.0, title: str = "ormevents") -> Any:
    """The dashboard of one queue as an ASGI (Starlette) app.

    ``redis_url``, ``queue`` and ``broker_url`` (for retries) default to ``ORMEVENTS_REDIS_URL``,
    ``ORMEVENTS_QUEUE`` and ``ORMEVENTS_BROKER_URL``, as the worker's. ``token`` /
    ``basic_auth`` (``"user:password"``) / ``host_auth=True`` choose the authentication
    (:class:`~ormevents.ops.web.security.WebAuth`); ``secret`` signs CSRF tokens (give every
    process behind one load balancer the same); ``refresh``: seconds between live updates (0: off).

    Raises :class:`~ormevents.errors.ConfigurationError` without a Redis URL, for a bad token or
    basic-auth value, or when the ``web`` extra is not installed.
    """
    try:
        from .ops.web.app import create_app
        from .ops.web.security import WebAuth
    except ImportError as exc:
        raise ConfigurationError(f"the dashboard needs the web extra ({exc.name} is missing): "
                                 "pip install 'ormevents[web]'") from None
    from .delivery.celery.config import DEFAULT_QUEUE, DeliverySettings
    from .ops.cli.plumbing import check_url

    redis_url = redis_url or os.environ.get("ORMEVENTS_REDIS_URL")
    if not redis_url:
        raise ConfigurationError("ormevents.web.app() needs redis_url= (or ORMEVENTS_REDIS_URL): the Redis "
                                 "holding the queue's failed jobs, status and schedule")
    check_url("--redis-url", redis_url)
    broker_url = broker_url or os.environ.get("ORMEVENTS_BROKER_URL") or None
    if broker_url:
        check_url("--broker-url", broker_url)
    settings = DeliverySettings(redis_url=redis_url, broker_url=broker_url,
                                queue_name=queue or os.environ.get("ORMEVENTS_QUEUE") or DEFAULT_QUEUE)
    auth = WebAuth.from_options(token, basic_auth, host_auth)
    return create_app(settings, auth=auth, secret=secret, refresh=refresh, title=title)
