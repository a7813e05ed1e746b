"""The Celery app ``celery -A ormevents.worker worker`` runs.

Configure it with environment variables (see :mod:`ormevents.delivery.celery.config`), at least
``ORMEVENTS_REDIS_URL`` and ``ORMEVENTS_IMPORTS`` (the modules defining your handlers)::

    ORMEVENTS_REDIS_URL=redis://localhost:6379/0 ORMEVENTS_QUEUE=shop:events \\
    ORMEVENTS_IMPORTS=shop.handlers celery -A ormevents.worker worker -Q shop:events
"""

from __future__ import annotations

from .delivery.celery.app import create_worker_app

app = create_worker_app()
