"""Extra Celery settings for the time-limit tests' worker (``ORMEVENTS_CELERY_CONFIG``)."""

task_soft_time_limit = 1
