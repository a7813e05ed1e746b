"""Where the example app's servers are: read from the environment, shared by app and worker."""

from __future__ import annotations

import os
from dataclasses import dataclass

CARRIER_FIXED = "shop:carrier:fixed"
"""Redis flag: while it is absent the simulated carrier API rejects every request."""


@dataclass(frozen=True)
class Settings:
    """Connection settings of the example app (the worker reads the same variables)."""

    mongo_uri: str
    redis_uri: str
    database: str = "shop"
    queue: str = "shop:events"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            mongo_uri=os.environ["SHOP_MONGO_URI"],
            redis_uri=os.environ["SHOP_REDIS_URI"],
            database=os.environ.get("SHOP_DATABASE", "shop"),
            queue=os.environ.get("ORMEVENTS_QUEUE", "shop:events"),
        )

    def environ(self) -> dict[str, str]:
        """The variables a worker process needs to run the shop's handlers."""
        return {
            "SHOP_MONGO_URI": self.mongo_uri,
            "SHOP_REDIS_URI": self.redis_uri,
            "SHOP_DATABASE": self.database,
            "ORMEVENTS_REDIS_URL": self.redis_uri,
            "ORMEVENTS_QUEUE": self.queue,
            "ORMEVENTS_IMPORTS": "example_app.handlers",
        }
