"""Write-path benchmark: an ormevents save against the hand-rolled alternative, side by side.

Runs on private servers it starts itself (SecantusDB + a Redis-compatible server), so the
numbers compare variants measured in the same run on the same machine; quote the ratios.

    python benchmarks/write_path.py [--ops 2000] [--rounds 4]

Variants (each op changes one field of one document):
  raw update_one                   PyMongo async update_one
  ormevents save, recorded         EventModel.save(): diff + hooks + Event, in-memory publisher
  update_one + apply_async         hand-rolled: update_one, then Celery send in a thread
  ormevents save, Celery           EventModel.save() publishing through Celery (Redis broker)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

from celery import Celery
from pymongo import AsyncMongoClient

import ormevents
from ormevents import EventModel
from ormevents.hooks import before_update
from ormevents.testing.servers import redis_server, secantus_server


class Account(EventModel):
    _collection = "bench_accounts"
    email: str
    balance: int = 0

    @before_update(when="balance")
    def check(self) -> None:
        if self.balance < 0:
            raise ValueError("negative balance")


async def timed(op: Callable[[int], Awaitable[Any]], ops: int) -> list[float]:
    samples = []
    for i in range(ops):
        start = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - start)
    return samples


async def main(ops: int, rounds: int) -> None:
    with ExitStack() as stack:
        mongo_uri = stack.enter_context(secantus_server())
        redis_uri = stack.enter_context(redis_server())
        client: Any = AsyncMongoClient(mongo_uri, tz_aware=True)
        raw = client.bench.raw_accounts
        await raw.insert_one({"_id": 1, "email": "a@x", "balance": 0})
        celery = Celery("bench", broker=redis_uri)
        celery.conf.update(task_serializer="json", accept_content=["json"])

        async def raw_update(i: int) -> None:
            await raw.update_one({"_id": 1}, {"$set": {"balance": i}})

        async def raw_update_and_send(i: int) -> None:
            await raw.update_one({"_id": 1}, {"$set": {"balance": i}})
            await asyncio.to_thread(celery.send_task, "bench.noop", args=[{"id": 1, "balance": i}], queue="bench")

        await ormevents.init(database=client.bench)
        recorded = await Account.create(email="a@x")

        async def save_recorded(i: int) -> None:
            recorded.balance = i + 1
            await recorded.save()
            ormevents.get_runtime().publisher.clear()  # type: ignore[attr-defined]  # RecordingPublisher

        results: dict[str, list[float]] = {}
        variants: list[tuple[str, Callable[[int], Awaitable[Any]]]] = [
            ("raw update_one", raw_update),
            ("ormevents save, recorded", save_recorded),
            ("update_one + apply_async", raw_update_and_send),
        ]
        for _ in range(rounds):
            for name, op in variants:
                results.setdefault(name, []).extend(await timed(op, ops // rounds))
        await ormevents.init(database=client.bench, redis_uri=redis_uri, event_config={"queue_name": "bench:events"})
        published = await Account.create(email="b@x")

        async def save_published(i: int) -> None:
            published.balance = i + 1
            await published.save()

        for _ in range(rounds):
            results.setdefault("ormevents save, Celery", []).extend(await timed(save_published, ops // rounds))
        await ormevents.close()
        await client.close()

    base = statistics.median(results["raw update_one"])
    hand = statistics.median(results["update_one + apply_async"])
    print(f"{'variant':<28} {'p50 ms':>8} {'p99 ms':>8} {'x raw':>7} {'x hand-rolled':>14}")
    for name, samples in results.items():
        p50 = statistics.median(samples)
        p99 = statistics.quantiles(samples, n=100)[98]
        print(f"{name:<28} {p50 * 1e3:8.3f} {p99 * 1e3:8.3f} {p50 / base:7.2f} {p50 / hand:14.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.ops, args.rounds))
