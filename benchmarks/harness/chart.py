"""The chart of a run (``docs/benchmarks.png``): ormevents' relative cost per comparison, and fan-out.

Left: one bar per comparison, ormevents' cost relative to its baseline (time ratio, or the
inverse of the rate ratio) on a log scale, so 1.0 is parity and left of it ormevents is
ahead; the target of issue 14 is marked where it is a ratio. Right: handler runs/s against
fan-out for both sides (scenario 11), where a picture reads better than the table.

    python -m benchmarks.harness.chart benchmarks/results/latest.json docs/benchmarks.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .report import ScenarioResult, load_json

FLOOR, CEILING = 0.05, 20.0
"""Bars are clipped to this range (a zero cost, e.g. no memory growth, is drawn at the floor)."""


def draw(results: list[ScenarioResult], machine: dict[str, Any], path: Path) -> None:
    """Write the PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    bars = [(f"#{r.number} {c.label}", c.cost, c.target_cost) for r in results for c in r.comparisons
            if c.cost == c.cost]  # NaN: not measured
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, max(5, 0.32 * len(bars) + 1.5)),
                                      gridspec_kw={"width_ratios": [2.2, 1]})
    for y, (label, cost, limit) in enumerate(reversed(bars)):
        shown = min(max(cost, FLOOR), CEILING)
        good = cost <= (limit if limit is not None else 1.0)
        left.barh(y, shown - 1, left=1, color="#2e7d32" if good else "#c62828")
        left.text(shown * (1.04 if shown >= 1 else 0.96), y, f"{cost:.2f}x", va="center",
                  ha="left" if shown >= 1 else "right", fontsize=7)
        if limit is not None:
            left.plot([limit, limit], [y - 0.4, y + 0.4], color="black", linewidth=2)
    left.set_yticks(range(len(bars)), [b[0] for b in reversed(bars)], fontsize=8)
    left.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    left.set_xscale("log")
    left.set_xlim(FLOOR / 1.5, CEILING * 1.5)
    left.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    left.set_xlabel("ormevents' cost relative to its baseline (log scale; 1x = parity, left = ormevents ahead; "
                    "black tick = target; green = target met)", fontsize=8)
    fanout = next((r for r in results if r.number == 11 and r.rows), None)
    if fanout is not None:
        for side, style, name in (("raw Celery, fan-out ", "o-", "raw Celery"),
                                  ("ormevents, fan-out ", "s-", "ormevents (publish_many)"),
                                  ("ormevents, fan-out ", "s--", "ormevents (one by one)")):
            rows = [row for row in fanout.rows if row.label.startswith(side)
                    and row.label.endswith("one by one") == name.endswith("(one by one)")]
            right.plot([int(row.label[len(side):].split(",")[0]) for row in rows], [row.median for row in rows], style,
                       label=name)
        right.set_xscale("log", base=2)
        right.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        right.set_ylim(bottom=0)
        right.set_xlabel("handlers (tasks) per event")
        right.set_ylabel("handler runs (tasks) per second")
        right.set_title("#11 fan-out")
        right.legend()
    fig.suptitle(f"ormevents vs baselines, {machine.get('cores')} cores, Python {machine.get('python')}, "
                 f"ormevents {machine.get('ormevents_commit')}, load {machine.get('load_start')} -> {machine.get('load_end')}",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    machine, results = load_json(Path(sys.argv[1]))
    draw(results, machine, Path(sys.argv[2]))
