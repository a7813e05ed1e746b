"""The shared machinery of the benchmark suite: timing and statistics (:mod:`.stats`),
private servers (:mod:`.servers`), Celery worker processes (:mod:`.workers`), the run context
(:mod:`.context`), the machine description (:mod:`.machine`), results and the table
(:mod:`.report`) and the chart (:mod:`.chart`)."""
