"""The Celery side of ormevents: app/config, tasks, the Redis schedule and the worker runtime.

``celery -A ormevents.worker worker`` builds everything from environment variables (see
:mod:`ormevents.celery.config`); publishing processes use :class:`ormevents.bus.CeleryPublisher`.
"""
