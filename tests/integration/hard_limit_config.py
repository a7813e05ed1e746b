"""Extra Celery settings for the hard time-limit test's worker (``ORMEVENTS_CELERY_CONFIG``)."""

task_time_limit = 2
