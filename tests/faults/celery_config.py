"""Celery settings of the fault scenarios' workers (``ORMEVENTS_CELERY_CONFIG``): a message a worker
took and could not finish is visible again after 10 s (kombu's default: an hour), so a scenario
sees the worker's restorer (:mod:`ormevents.delivery.celery.restorer`, every 5 s here) put it back.
kombu's own restore holds a Redis mutex; one left behind by a worker that lost Redis mid-restore
blocks kombu's restores for ``unacked_mutex_expire`` (kombu's default: 300 s), so it is 5 s here."""

broker_transport_options = {
    "visibility_timeout": 10,
    "unacked_mutex_expire": 5,
    "socket_connect_timeout": 5,
    "socket_timeout": 5,
}
