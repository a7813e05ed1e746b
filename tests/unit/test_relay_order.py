"""The relay asks for its next batch before it works on the current one (scenario 13: the
server reads the next batch while the relay builds and publishes this one)."""

from __future__ import annotations

from typing import Any

from ormevents.delivery.outbox.relay import Relay
from ormevents.jobs.keys import Keys

ORDER: list[str] = []


class Cursor:
    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        self.batches = batches

    async def to_list(self, length: int) -> list[dict[str, Any]]:
        ORDER.append("ask")
        return self.batches.pop(0) if self.batches else []

    async def close(self) -> None: ...


class Collection:
    def find(self, *args: Any, **kwargs: Any) -> Cursor:
        return Cursor([[{"_id": 1}], [{"_id": 2}]])


class Publisher:
    async def publish_many(self, records: list[Any]) -> int:
        return len(records)


class Lease:
    fence = 1

    async def acquire(self) -> bool:
        return True


class Redis:
    async def hset(self, *args: Any) -> None: ...


async def test_the_next_batch_is_asked_for_before_this_one_is_worked_on(monkeypatch: Any) -> None:
    relay = Relay({"docs": Collection()}, Publisher(), Redis(), Keys("q:events"))
    relay._leases["docs"] = Lease()  # type: ignore[assignment]  # a stand-in holding the lease

    async def records(name: str, documents: list[dict[str, Any]], cutoff: Any) -> list[Any]:
        ORDER.append(f"work {documents[0]['_id']}")
        return []

    monkeypatch.setattr(relay, "_records", records)
    await relay.relay("docs")
    assert ORDER == ["ask", "ask", "work 1", "ask", "work 2"]
