"""A Celery config module for ormevents workers (``app.config_from_object("celeryconfig")``).

Everything comes from ``ORMEVENTS_*`` environment variables (see ``ormevents.delivery.celery.config``):
broker from ``ORMEVENTS_BROKER_URL`` (else ``ORMEVENTS_REDIS_URL``), JSON only, late acks,
``task_reject_on_worker_lost``, prefetch 1, the queue from ``ORMEVENTS_QUEUE`` and the handler
modules to import from ``ORMEVENTS_IMPORTS`` (comma-separated). ``celery -A ormevents.worker
worker`` applies the same settings without this file; keep it to start from your own app.
"""

from __future__ import annotations

from ormevents.delivery.celery.config import DeliverySettings

_settings = DeliverySettings.from_env()

broker_url = _settings.broker
broker_connection_timeout = _settings.publish_retry.timeout
broker_connection_retry_on_startup = True
broker_transport_options = _settings.celery_conf()["broker_transport_options"]
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_default_queue = _settings.queue_name
task_create_missing_queues = True
enable_utc = True
imports = _settings.imports
