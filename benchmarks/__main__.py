"""Run the benchmark suite of issue 14: ``python -m benchmarks [--quick] [--only 1,4]``.

Prints each scenario's rows, ratios and targets as it finishes, then a summary; writes the
run as JSON (``benchmarks/results/latest.json``, or ``quick.json`` with ``--quick``), the
Markdown tables beside it and, for a full run, the chart ``docs/benchmarks.png``. Exits 1 if
a scenario raised (timings never fail the run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from pathlib import Path

from benchmarks import scenarios
from benchmarks.harness import report
from benchmarks.harness.context import Bench
from benchmarks.harness.machine import (
    ROOT_DIR,
    describe_machine,
    load_average,
    server_versions,
)

RESULTS = Path(__file__).resolve().parent / "results"
CHART = ROOT_DIR / "docs" / "benchmarks.png"


async def run_all(quick: bool, numbers: set[int] | None) -> tuple[dict[str, object], list[report.ScenarioResult]]:
    """Run the chosen scenarios on one set of servers and workers."""
    machine = describe_machine(ROOT_DIR)
    machine["mode"] = "quick" if quick else "full"
    results = []
    async with Bench(quick=quick) as bench:
        machine["servers"] = await server_versions(bench.db, bench.redis)
        print(f"machine: {machine}", flush=True)
        for module in scenarios.load(numbers):
            began = time.perf_counter()
            print(f"\n... scenario {module.NUMBER}: {module.TITLE}", flush=True)
            try:
                if getattr(module, "FRESH_MONGO", False) and results:
                    await bench.fresh_mongo()
                result = await module.run(bench)
            except Exception:
                result = report.ScenarioResult(module.NUMBER, module.TITLE, status="error", error=traceback.format_exc())
                print(result.error, file=sys.stderr, flush=True)
            result.seconds = time.perf_counter() - began
            report.print_scenario(result)
            results.append(result)
    machine["load_end"] = load_average()
    return machine, results


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, report; 1 if a scenario failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run); figures mean nothing")
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 1,4")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/{latest,quick}.json)")
    parser.add_argument("--chart", type=Path, help=f"PNG chart (default {CHART.relative_to(ROOT_DIR)} for full runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    numbers = {int(n) for n in args.only.split(",")} if args.only else None
    began = time.perf_counter()
    machine, results = asyncio.run(run_all(args.quick, numbers))
    machine["seconds"] = round(time.perf_counter() - began, 1)
    report.print_summary(results)
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    report.write_json(out, machine, results)
    out.with_suffix(".md").write_text(report.markdown(results))
    chart = args.chart or (None if args.quick or numbers else CHART)
    if chart is not None:
        from benchmarks.harness.chart import draw

        draw(results, machine, chart)
    print(f"\nload average: start {machine['load_start']}, end {machine['load_end']}; "
          f"{machine['seconds']} s; results: {out}" + (f"; chart: {chart}" if chart else ""))
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
