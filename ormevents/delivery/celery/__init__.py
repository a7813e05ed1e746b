"""Delivery through Celery: the publisher, the app and its config, the two tasks, the Redis
schedule, the worker's task bodies and outcomes, the per-process loop, failed-job requeue.

``celery -A ormevents.worker worker`` builds the worker from environment variables (see
:mod:`.config`); publishing processes use :class:`.publisher.CeleryPublisher`. Imported by the
runtime (lazily, when ``init(redis_uri=...)`` asks for it) and the command line.
"""
