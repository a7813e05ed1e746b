"""Celery settings of the fault scenarios' workers (``ORMEVENTS_CELERY_CONFIG``): a message a worker
took and could not finish is visible again after 10 s, and kombu looks for such messages every
second (its defaults: after an hour, every ~100 s), so a scenario sees them come back. The restore
holds a Redis mutex; one left behind by a worker that lost Redis mid-restore blocks restores for
``unacked_mutex_expire`` (kombu's default: 300 s), so it is 5 s here."""

broker_transport_options = {
    "visibility_timeout": 10,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 5,
    "socket_connect_timeout": 5,
    "socket_timeout": 5,
}
