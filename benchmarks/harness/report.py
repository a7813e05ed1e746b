"""Results of a run: rows, comparisons and targets per scenario; the table, JSON and Markdown.

A scenario fills one :class:`ScenarioResult`: a :class:`Row` per measured variant (role
``baseline``, ``ormevents`` or ``info``), a :class:`Comparison` per ormevents/baseline pair
(the ratio of medians, and ormevents' relative *cost*: > 1 means ormevents is slower, for
latencies and rates alike) and a :class:`Target` per goal of issue 14 (met, or missed by how
much).

Example::

    result = ScenarioResult(1, "save() latency")
    result.add(series["raw"], "baseline")
    result.add(series["ormevents"], "ormevents")
    ratio = result.compare("ormevents / raw", "ormevents", "raw")
    result.target("median <= 1.3x raw update_one", ratio.ratio, 1.3)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .stats import Series

RATES = ("/s",)


def fmt(value: float | None, unit: str = "") -> str:
    """``value`` with about three significant digits and its unit (``-`` when absent)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    text = f"{value:,.0f}" if magnitude >= 100 else f"{value:.1f}" if magnitude >= 10 else f"{value:.2f}"
    if 0 < magnitude < 0.01:
        text = f"{value:.4f}"
    return f"{text} {unit}".strip() if unit != "x" else f"{text}x"


@dataclass
class Row:
    """One measured variant: median, p99 and the spread of the per-round medians."""

    label: str
    role: str
    unit: str
    median: float
    p99: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0

    @property
    def higher_is_better(self) -> bool:
        """Rates (``.../s``) are better high; times and sizes low."""
        return self.unit.endswith(RATES)


@dataclass
class Comparison:
    """ormevents against a baseline: ``ratio`` of medians, ``cost`` > 1 when ormevents is worse."""

    label: str
    ormevents: str
    baseline: str
    ratio: float
    cost: float
    target_cost: float | None = None
    """The target as a relative cost, when the target is this ratio."""


@dataclass
class Target:
    """A goal from issue 14; ``measured`` is ``None`` when it could not be measured."""

    text: str
    measured: float | None
    limit: float
    unit: str = "x"
    higher_is_better: bool = False

    @property
    def met(self) -> bool | None:
        """True, False, or None when not measured."""
        if self.measured is None or math.isnan(self.measured):
            return None
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit

    @property
    def verdict(self) -> str:
        """``met``, ``MISSED: ... (Nx off)`` or ``not measured``."""
        if self.met is None:
            return "not measured"
        if self.met:
            return "met"
        assert self.measured is not None
        off = (self.limit / self.measured if self.measured else math.inf) if self.higher_is_better \
            else (self.measured / self.limit if self.limit else math.inf)
        return f"MISSED by {off:.2f}x"


@dataclass
class ScenarioResult:
    """Everything one scenario measured (``status``: ``ok``, ``not available`` or ``error``)."""

    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    error: str = ""
    seconds: float = 0.0

    def add(self, series: Series, role: str, label: str | None = None, *, p99: bool = True) -> Row:
        """Add a row from ``series`` (``p99=False`` for one-number-per-round rates)."""
        row = Row(label or series.label, role, series.unit, series.median, series.p99 if p99 else None,
                  series.low, series.high, len(series.values))
        self.rows.append(row)
        return row

    def value(self, label: str, role: str, unit: str, value: float | None) -> Row:
        """Add a single-number row (``None``: not available)."""
        row = Row(label, role, unit, math.nan if value is None else value)
        self.rows.append(row)
        return row

    def row(self, label: str) -> Row:
        """The row called ``label``."""
        return next(r for r in self.rows if r.label == label)

    def compare(self, label: str, ormevents: str, baseline: str) -> Comparison:
        """Compare two rows by their medians."""
        orm, base = self.row(ormevents), self.row(baseline)
        ratio = orm.median / base.median if base.median else math.nan
        cost = (1 / ratio if ratio else math.inf) if orm.higher_is_better else ratio
        comparison = Comparison(label, ormevents, baseline, ratio, cost)
        self.comparisons.append(comparison)
        return comparison

    def target(self, text: str, measured: float | None, limit: float, unit: str = "x",
               higher_is_better: bool = False) -> Target:
        """Record a goal and what was measured against it."""
        goal = Target(text, measured, limit, unit, higher_is_better)
        self.targets.append(goal)
        return goal

    def target_ratio(self, text: str, comparison: Comparison, limit: float, higher_is_better: bool = False) -> Target:
        """A goal on ``comparison``'s ratio (also marked on the chart)."""
        comparison.target_cost = 1 / limit if higher_is_better else limit
        return self.target(text, comparison.ratio, limit, "x", higher_is_better)


def print_scenario(result: ScenarioResult) -> None:
    """The scenario's rows, comparisons and targets, as text."""
    print(f"\n#{result.number} {result.title}  [{result.status}, {result.seconds:.1f} s]")
    if result.error:
        print("   ERROR: " + result.error.strip().splitlines()[-1])
    if result.rows:
        print(f"   {'variant':<58} {'median':>12} {'p99':>12} {'round medians':>21} {'n':>7}")
    for row in result.rows:
        spread = f"{fmt(row.low)}-{fmt(row.high)}" if row.low is not None and not math.isnan(row.low) else ""
        print(f"   {row.label + ' (' + row.role + ')':<58} {fmt(row.median, row.unit):>12} "
              f"{fmt(row.p99, row.unit):>12} {spread:>21} {row.n or '':>7}")
    for c in result.comparisons:
        print(f"   ratio {c.label}: {fmt(c.ratio, 'x')} (ormevents' relative cost {fmt(c.cost, 'x')})")
    for t in result.targets:
        print(f"   target {t.text}: measured {fmt(t.measured, t.unit)} vs {fmt(t.limit, t.unit)} -> {t.verdict}")
    for note in result.notes:
        print(f"   note: {note}")


def print_summary(results: list[ScenarioResult]) -> None:
    """One line per target across the run."""
    print("\nSummary (targets of issue 14)")
    print(f"{'#':>3}  {'target':<64} {'measured':>12} {'limit':>10}  verdict")
    for result in results:
        if result.status == "error":
            print(f"{result.number:>3}  {'(scenario failed: ' + result.title + ')':<64}")
        for t in result.targets:
            limit = ("<= " if not t.higher_is_better else ">= ") + fmt(t.limit, t.unit)
            print(f"{result.number:>3}  {t.text[:64]:<64} {fmt(t.measured, t.unit):>12} {limit:>10}  {t.verdict}")


def markdown(results: list[ScenarioResult]) -> str:
    """Two Markdown tables: every comparison, and every target with its verdict."""
    lines = ["| # | comparison | baseline | ormevents | ratio |", "|---|---|---|---|---|"]
    for r in results:
        for c in r.comparisons:
            base, orm = r.row(c.baseline), r.row(c.ormevents)
            lines.append(f"| {r.number} | {c.label} | {fmt(base.median, base.unit)} | {fmt(orm.median, orm.unit)} "
                         f"| {fmt(c.ratio, 'x')} |")
    lines += ["", "| # | target | measured | limit | verdict |", "|---|---|---|---|---|"]
    for r in results:
        for t in r.targets:
            limit = ("<= " if not t.higher_is_better else ">= ") + fmt(t.limit, t.unit)
            lines.append(f"| {r.number} | {t.text} | {fmt(t.measured, t.unit)} | {limit} | {t.verdict} |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, machine: dict[str, Any], results: list[ScenarioResult]) -> None:
    """The whole run as JSON (rows, comparisons, targets with verdicts, notes, machine)."""
    payload = {"machine": machine, "scenarios": [
        {**asdict(r), "targets": [{**asdict(t), "met": t.met, "verdict": t.verdict} for t in r.targets]}
        for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str, allow_nan=True) + "\n")


def load_json(path: Path) -> tuple[dict[str, Any], list[ScenarioResult]]:
    """Read back what :func:`write_json` wrote (for the chart and the Markdown tables)."""
    payload = json.loads(path.read_text())
    results = []
    for s in payload["scenarios"]:
        targets = [Target(**{k: v for k, v in t.items() if k not in ("met", "verdict")}) for t in s.pop("targets")]
        rows = [Row(**row) for row in s.pop("rows")]
        comparisons = [Comparison(**c) for c in s.pop("comparisons")]
        results.append(ScenarioResult(**s, rows=rows, comparisons=comparisons, targets=targets))
    return payload["machine"], results


def markdown_ranges(runs: list[list[ScenarioResult]]) -> str:
    """A Markdown table of every comparison's ratio in the last run and its range over ``runs``."""
    seen: dict[tuple[int, str], list[float]] = {}
    for results in runs:
        for r in results:
            for c in r.comparisons:
                seen.setdefault((r.number, c.label), []).append(c.ratio)
    last = {(r.number, c.label): c.ratio for r in runs[-1] for c in r.comparisons}
    lines = [f"| # | comparison | ratio, last run | range over {len(runs)} runs |", "|---|---|---|---|"]
    for (number, label), ratios in seen.items():
        lines.append(f"| {number} | {label} | {fmt(last.get((number, label)), 'x')} | "
                     f"{fmt(min(ratios), 'x')}-{fmt(max(ratios), 'x')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    print(markdown_ranges([load_json(Path(p))[1] for p in sys.argv[1:]]))
