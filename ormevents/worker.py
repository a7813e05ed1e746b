"""The Celery app ``celery -A ormevents.worker worker`` runs.

Configure it with environment variables (see :mod:`ormevents.delivery.celery.config`), at least
``ORMEVENTS_REDIS_URL`` and ``ORMEVENTS_IMPORTS`` (the modules defining your handlers)::

    ORMEVENTS_REDIS_URL=redis://localhost:6379/0 ORMEVENTS_QUEUE=shop:events \\
    ORMEVENTS_IMPORTS=shop.handlers celery -A ormevents.worker worker -Q shop:events

A setting that is missing or wrong (no ``ORMEVENTS_REDIS_URL``, a handler module that cannot be
imported, malformed JSON in a policy variable) stops the worker before it starts, with one line
on stderr that names the variable or the module (exit code 1), not a traceback.
"""

from __future__ import annotations

from .delivery.celery.app import create_worker_app
from .errors import ConfigurationError

try:
    app = create_worker_app()
except ConfigurationError as exc:
    raise SystemExit(f"ormevents worker: {exc}") from None
