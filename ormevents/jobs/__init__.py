"""Jobs: failed-job records (:mod:`.records`), their stores (Redis, in memory), per-event
status, and the Redis key names of a queue (:mod:`.keys`).

Imported by the delivery side, the bus facade and the command line; imports no model code.
"""

from __future__ import annotations

from .records import FailedJob, FailedJobFilter, FailedJobRetention, Page

__all__ = ["FailedJob", "FailedJobFilter", "FailedJobRetention", "Page"]
