"""Prints the demo's writes and, under each, the handler runs it caused.

Every write of the demo runs inside ``event_metadata(write=<n>)``, so each event it emits (and
each event its after-hooks emit, delayed ones too) carries the write's number; the shop's
handlers note it with each run in the ``timeline`` collection. Runs are printed as they happen,
marked with their write (``#3``), and :meth:`Timeline.print_by_write` prints them again grouped
under the write that caused them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ormevents.events.redaction import redact_changes


def shown(value: Any) -> str:
    """A value as the timeline prints it: ``None`` stays ``None``, the rest as ``repr``."""
    return "None" if value is None else repr(value)


def diff_text(model: Any) -> str:
    """The last write's diff, sensitive values redacted; a value that was (or became) ``None``
    is shown as ``None``: there is nothing to hide in it."""
    raw = model.saved_changes.as_pairs()
    redacted = redact_changes(type(model), model.saved_changes)
    parts = []
    for path, (old, new) in redacted.items():
        before, after = raw.get(path, (old, new))
        parts.append(f"{path}: {shown(None if before is None else old)} -> {shown(None if after is None else new)}")
    return ", ".join(parts) or "(none)"


@dataclass
class Write:
    """One write of the demo: its number, what it did and its diff."""

    number: int
    label: str
    diff: str
    runs: list[dict[str, Any]] = field(default_factory=list)


class Timeline:
    """Follows the ``timeline`` collection the shop's handlers write to."""

    def __init__(self, database: Any) -> None:
        self.collection = database.timeline
        self.seen: list[dict[str, Any]] = []
        self.writes: dict[int, Write] = {}

    def write(self, number: int, label: str, model: Any) -> None:
        """Print write ``number`` (done inside ``event_metadata(write=number)``) and its diff."""
        entry = Write(number, label, diff_text(model))
        self.writes[number] = entry
        print(f"\n● #{number} {label}\n    diff: {entry.diff}", flush=True)

    @staticmethod
    def line(entry: dict[str, Any]) -> str:
        mark = "✔" if entry["outcome"] == "ok" else ("…" if entry["outcome"] == "running" else "✘")
        return (f"{mark} {entry['handler']:<30} {entry['event']:<24} attempt {entry['attempt']}"
                f"  {entry['detail']}")

    async def poll(self) -> None:
        query = {"_id": {"$nin": [entry["_id"] for entry in self.seen]}}
        async for entry in self.collection.find(query, sort=[("at", 1)]):
            self.seen.append(entry)
            write = entry.get("write")
            print(f"    {'#' + str(write) if write is not None else '  '} {self.line(entry)}", flush=True)

    async def follow(self, seconds: float) -> None:
        """Print new entries for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.poll()
            await asyncio.sleep(0.1)
        await self.poll()

    def print_by_write(self) -> None:
        """Every write, then the handler runs it caused (retries included), in the order they ran."""
        print("\n● the timeline, each handler run under the write that caused it:")
        for number, write in sorted(self.writes.items()):
            print(f"\n  #{number} {write.label}\n      diff: {write.diff}")
            runs = [entry for entry in self.seen if entry.get("write") == number]
            for entry in runs:
                print(f"      {self.line(entry)}")
            if not runs:
                print("      (no handler runs)")

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
