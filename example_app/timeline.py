"""Prints handler runs as the worker records them in the ``timeline`` collection."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class Timeline:
    """Follows the ``timeline`` collection the shop's handlers write to."""

    def __init__(self, database: Any) -> None:
        self.collection = database.timeline
        self.seen: list[dict[str, Any]] = []

    async def poll(self) -> None:
        query = {"_id": {"$nin": [entry["_id"] for entry in self.seen]}}
        async for entry in self.collection.find(query, sort=[("at", 1)]):
            self.seen.append(entry)
            mark = "✔" if entry["outcome"] == "ok" else ("…" if entry["outcome"] == "running" else "✘")
            print(f"    {mark} {entry['handler']:<30} {entry['event']:<24} attempt {entry['attempt']}"
                  f"  {entry['detail']}", flush=True)

    async def follow(self, seconds: float) -> None:
        """Print new entries for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.poll()
            await asyncio.sleep(0.1)
        await self.poll()

    def handled(self) -> set[tuple[str, str]]:
        return {(e["event"], e["handler"]) for e in self.seen if e["outcome"] in ("ok", "running")}

    def missing(self, expected: list[tuple[str, str]]) -> list[tuple[str, str]]:
        done = self.handled()
        return [pair for pair in expected if pair not in done]

    async def wait_for(self, expected: list[tuple[str, str]], timeout: float) -> None:
        """Print entries until every ``(event, handler)`` in ``expected`` ran, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.missing(expected) and time.monotonic() < deadline:
            await self.follow(0.3)
        await self.follow(1.0)
