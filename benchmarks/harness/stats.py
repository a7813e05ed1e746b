"""Timing and statistics: latency samples, rates, percentiles, interleaved rounds.

Every comparison in the suite runs its variants in the same process, alternating round by
round (the order is reversed every other round), so a slow spell of the shared machine falls
on all of them. A :class:`Series` keeps every sample and the median of each round, whose
spread (``low``-``high``) is reported next to the overall median.

Example::

    series = await interleave({"raw": raw_op, "ormevents": orm_op}, ops=2000, rounds=4)
    series["ormevents"].median / series["raw"].median      # the ratio of medians
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Op = Callable[[int], Awaitable[Any]]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; ``nan`` for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Series:
    """Samples of one variant (``unit``: what the numbers are, e.g. ``ms`` or ``events/s``)."""

    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)

    def add_round(self, values: list[float]) -> None:
        """Append one round's samples; its median becomes one point of the spread."""
        self.values.extend(values)
        self.rounds.append(statistics.median(values))

    @property
    def median(self) -> float:
        """Median of every sample."""
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def p99(self) -> float:
        """99th percentile of every sample."""
        return percentile(self.values, 99)

    @property
    def low(self) -> float:
        """Lowest per-round median."""
        return min(self.rounds) if self.rounds else float("nan")

    @property
    def high(self) -> float:
        """Highest per-round median."""
        return max(self.rounds) if self.rounds else float("nan")


async def timed(op: Op, count: int, start: int = 0, scale: float = 1e3) -> list[float]:
    """Run ``op(i)`` ``count`` times one after another; one sample each, times ``scale`` (ms).

    The sample is the duration of the call, unless ``op`` returns a number of seconds itself
    (e.g. a latency it read from the handler's start time).
    """
    samples = []
    for i in range(start, start + count):
        began = time.perf_counter()
        value = await op(i)
        elapsed = time.perf_counter() - began
        samples.append((value if isinstance(value, float) else elapsed) * scale)
    return samples


async def interleave(variants: dict[str, Op], ops: int, rounds: int, *, warmup: int = 20,
                     unit: str = "ms", scale: float = 1e3) -> dict[str, Series]:
    """Time every variant for ``ops`` operations in ``rounds`` alternating rounds.

    Each variant first runs ``warmup`` untimed operations. ``op`` receives a counter that
    never repeats for that variant, so every write changes the document.
    """
    series = {name: Series(name, unit) for name in variants}
    counters = dict.fromkeys(variants, 0)
    for name, op in variants.items():
        await timed(op, warmup, 10**9)
    per_round = max(1, ops // rounds)
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            series[name].add_round(await timed(variants[name], per_round, counters[name], scale))
            counters[name] += per_round
    return series

