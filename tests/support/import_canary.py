"""A module no code imports on purpose: hostile messages name it in their retry policy.

If a worker imported it because a message said so, it leaves a mark: ``<ORMEVENTS_QUEUE>:canary:imported``
is incremented in the worker's Redis (and the module shows up in ``sys.modules``).
"""

from __future__ import annotations

import os

if os.environ.get("ORMEVENTS_REDIS_URL"):
    import redis

    redis.Redis.from_url(os.environ["ORMEVENTS_REDIS_URL"]).incr(f"{os.environ.get('ORMEVENTS_QUEUE', '')}:canary:imported")


class CanaryError(Exception):
    """The exception class a hostile message names."""
