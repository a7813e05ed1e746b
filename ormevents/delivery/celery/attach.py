"""Attach ormevents to your own Celery app (your broker, config, beat and tasks) in one call.

Instead of a second app (``celery -A ormevents.worker worker``), your worker runs ormevents'
two tasks beside yours::

    # shop/celery_app.py
    from celery import Celery
    import ormevents

    app = Celery("shop", broker="redis://localhost:6379/0")
    app.config_from_object("shop.celeryconfig")          # configure first, then attach
    ormevents.attach_celery(app, redis_url="redis://localhost:6379/0", queue="shop:events",
                            imports=["shop.handlers"])

    # celery -A shop.celery_app worker        (consumes your queues and shop:events)

What it does to ``app``: registers ``ormevents.dispatch``, ``ormevents.dispatch_batch``,
``ormevents.run_handler`` and ``ormevents.run_handler_batch`` (late
acks, rejected on worker loss, JSON arguments) and the worker signals (the per-process loop,
the schedule poller, the heartbeat, parking malformed messages: :func:`~.tasks.install`);
routes the four tasks to ``queue`` (``task_routes``, your routes kept); makes every worker of the app
also consume ``queue`` (``celeryd_after_setup``: ``-Q`` still chooses your own queues); appends
``imports`` (and ``ORMEVENTS_IMPORTS``) to ``app.conf.imports``; and, on a ``redis://`` broker
with no ``broker_transport`` of yours (``rediss://`` too, verifying certificates unless the URL or
your ``broker_use_ssl`` says otherwise), uses the hardened transport
(:mod:`~ormevents.delivery.celery.transport`). Your broker, serializers for your tasks, beat
schedule, pools and limits stay as they are. Messages between ormevents' tasks are JSON:
``accept_content`` must include ``"json"`` (Celery's default).

Publishers (your web app) call ``init(redis_uri=..., broker_url=<the app's broker>,
event_config={"queue_name": queue})`` as before. Imported by ``ormevents`` (top level: this
module loads Celery only when :func:`attach_celery` is called).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ...errors import ConfigurationError

if TYPE_CHECKING:
    from ...handlers.registry import HandlerRegistry
    from .worker import WorkerDelivery

TASKS = ("ormevents.dispatch", "ormevents.dispatch_batch", "ormevents.run_handler", "ormevents.run_handler_batch")


def attach_celery(app: Any, *, redis_url: str | None = None, queue: str | None = None,
                  imports: Iterable[str] = (), consume: bool = True, harden_transport: bool = True,
                  handlers: HandlerRegistry | None = None, env: Mapping[str, str] | None = None) -> WorkerDelivery:
    """Register ormevents on the existing Celery ``app`` (see module doc); returns the
    :class:`~ormevents.delivery.celery.worker.WorkerDelivery` (also ``app.ormevents_delivery``).

    ``redis_url`` (schedule, failed jobs, status) and ``queue`` default to
    ``ORMEVENTS_REDIS_URL`` and ``ORMEVENTS_QUEUE``; the other ``ORMEVENTS_*`` worker variables
    (retry policy, retention, ...) apply too. The broker is the app's own. Call it after the
    app is configured (a later ``config_from_object`` would replace the routes and imports).

    Raises :class:`~ormevents.errors.ConfigurationError` without a Redis URL, when the app's
    ``accept_content`` leaves out JSON, or when called twice on one app.
    """
    from celery import signals  # type: ignore[import-untyped]  # celery ships no type hints

    from ...handlers.registry import registry
    from ..metrics import prepare_worker_metrics
    from .config import DEFAULT_QUEUE, DeliverySettings, broker_tls
    from .tasks import install
    from .worker import WorkerDelivery

    environ = dict(os.environ if env is None else env)
    if redis_url:
        environ["ORMEVENTS_REDIS_URL"] = redis_url
    if queue:
        environ["ORMEVENTS_QUEUE"] = queue
    if not environ.get("ORMEVENTS_REDIS_URL"):
        raise ConfigurationError("attach_celery() needs redis_url= (or ORMEVENTS_REDIS_URL): ormevents keeps its "
                                 "schedule, failed jobs and status in Redis")
    if getattr(app, "ormevents_delivery", None) is not None:
        raise ConfigurationError(f"ormevents is already attached to Celery app {app.main!r}")
    conf = app.conf
    accepted = conf.accept_content or ["json"]
    if "json" not in accepted and "application/json" not in accepted:
        raise ConfigurationError(f"Celery app {app.main!r} accepts {list(accepted)}: add 'json' to accept_content "
                                 "(ormevents' messages are JSON)")
    settings = DeliverySettings.from_env(environ)
    settings = DeliverySettings(**{**settings.__dict__, "broker_url": conf.broker_url or settings.broker_url,
                                   "queue_name": settings.queue_name or DEFAULT_QUEUE})
    conf.task_routes = _with_routes(conf.task_routes, settings.queue_name)
    conf.imports = (*tuple(conf.imports or ()), *settings.imports,
                    *(name for name in imports if name not in settings.imports))
    broker = str(conf.broker_url or "")
    if harden_transport and not conf.broker_transport and broker.startswith(("redis://", "rediss://", "unix://")):
        conf.broker_transport = "ormevents.delivery.celery.transport:Transport"
        if broker.startswith("rediss://") and not conf.broker_use_ssl:
            conf.broker_use_ssl = broker_tls(broker)
    delivery = WorkerDelivery(settings, handlers or registry, app)
    delivery.metrics_port = prepare_worker_metrics()
    install(app, delivery)
    app.ormevents_delivery = delivery
    if consume:
        def add_queue(sender: Any = None, instance: Any = None, **_: Any) -> None:
            if instance is not None and instance.app is app:
                instance.app.amqp.queues.select_add(settings.queue_name)

        signals.celeryd_after_setup.connect(add_queue, weak=False, dispatch_uid=f"ormevents:{id(app)}:consume")
    return delivery


def _with_routes(routes: Any, queue: str) -> Any:
    """``routes`` (None, a dict, or a list of routers) with ormevents' tasks routed to ``queue``;
    routes the app already has for them win."""
    ours = {name: {"queue": queue} for name in TASKS}
    if routes is None:
        return ours
    if isinstance(routes, Mapping):
        return {**ours, **routes}
    return (ours, *(routes if isinstance(routes, (list, tuple)) else (routes,)))
