"""Creating the Celery apps of ormevents: the worker's, and a publisher's private one.

Example::

    app = create_worker_app()                  # settings from ORMEVENTS_* variables
    app = create_app(DeliverySettings(redis_url="redis://localhost:6379/0"))   # publish only
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

from ...errors import ConfigurationError
from ...handlers.registry import HandlerRegistry, registry
from ..metrics import prepare_worker_metrics
from .config import DeliverySettings, publishing_app
from .tasks import install
from .worker import WorkerDelivery


def create_app(settings: DeliverySettings, main: str = "ormevents") -> Celery:
    """A Celery app configured for ``settings`` (no tasks: publishers send by task name)."""
    return publishing_app(settings, main)


def create_worker_app(
    settings: DeliverySettings | None = None, handlers: HandlerRegistry | None = None
) -> Celery:
    """The worker's app: settings from the environment, ormevents' tasks and signals installed.

    ``ORMEVENTS_CELERY_CONFIG`` names an extra Celery config module applied on top;
    ``ORMEVENTS_METRICS_PORT`` serves Prometheus metrics (see :mod:`ormevents.delivery.metrics`).
    The handler modules (``ORMEVENTS_IMPORTS``) are imported here, before Celery starts:
    :class:`~ormevents.errors.ConfigurationError` names the one that cannot be imported.
    """
    settings = settings or DeliverySettings.from_env()
    import_handlers(settings.imports)
    metrics_port = prepare_worker_metrics()  # before prometheus-client is imported anywhere
    app = Celery("ormevents")
    app.conf.update(settings.celery_conf())
    extra = os.environ.get("ORMEVENTS_CELERY_CONFIG")
    if extra:
        apply_config_module(app, extra)
    delivery = WorkerDelivery(settings, handlers or registry, app)
    delivery.metrics_port = metrics_port
    install(app, delivery)
    app.ormevents_delivery = delivery  # for introspection (Celery apps take attributes)
    return app


def apply_config_module(app: Celery, name: str) -> None:
    """Apply the Celery settings of module ``name`` over ormevents' own: each lowercase name the
    module defines wins, and its ``broker_transport_options`` are merged key by key over ours.

    (Celery's ``config_from_object`` would not do: settings given earlier with ``conf.update``
    take precedence over the object's, so the module's ``visibility_timeout`` and the like were
    silently ignored.) :class:`ConfigurationError` when the module cannot be imported.
    """
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise ConfigurationError(f"cannot import Celery config module {name!r} from ORMEVENTS_CELERY_CONFIG: "
                                 f"{type(exc).__name__}: {exc}") from None
    custom = {key: value for key, value in vars(module).items()
              if key.islower() and not key.startswith("_") and not callable(value) and not hasattr(value, "__file__")}
    options = {**(app.conf.broker_transport_options or {}), **(custom.pop("broker_transport_options", None) or {})}
    app.conf.update(custom, broker_transport_options=options)


def import_handlers(modules: Iterable[str]) -> None:
    """Import each handler module (the working directory first on the path, as ``celery -A``
    does); :class:`ConfigurationError` naming the module, and why, for one that cannot be."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # whatever the module raised while importing: name it in one line
            where, frame = "", exc.__traceback__
            while frame is not None and not isinstance(exc, ModuleNotFoundError):
                if frame.tb_frame.f_globals.get("__name__") == name:  # the line of the module that raised
                    where = f" ({frame.tb_frame.f_code.co_filename}:{frame.tb_lineno})"
                frame = frame.tb_next
            raise ConfigurationError(f"cannot import handler module {name!r} from ORMEVENTS_IMPORTS: "
                                     f"{type(exc).__name__}: {exc}{where}") from None
