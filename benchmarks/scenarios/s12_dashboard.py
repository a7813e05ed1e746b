"""Scenario 12: the dashboard serves a page of 50 failed jobs out of 100,000 (no baseline).

The store is filled as in scenario 7 (:func:`benchmarks.scenarios.s07_failed_paging.fill`).
Then ``ormevents web`` runs as a real server (uvicorn in a subprocess, as an operator starts
it) and one HTTP client reads ``/failed`` pages end to end (request, Redis reads on the
server's threads, rendering, response): filtered by handler (10,000 matching), by handler and
error type, unfiltered, walking each by the "older" link (the store's cursor), from the newest on.

Target of issue 15: a page of 50 out of 100,000, median <= 50 ms.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx

from benchmarks.harness.context import Bench
from benchmarks.harness.machine import ROOT_DIR
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import Series
from benchmarks.scenarios.s07_failed_paging import ERRORS, HANDLERS, PAGE, fill
from ormevents.testing.servers import free_port, stop, wait_for_port

NUMBER = 12
TITLE = "dashboard: page of 50 failed jobs out of 100,000, over HTTP"
QUEUE = "bench:dashboard"
_NEXT = re.compile(r'id="next" href="([^"]+)"')


def walk(client: httpx.Client, label: str, pages: int, **filters: str) -> Series:
    """GET up to ``pages`` pages of ``/failed`` matching ``filters``; one sample (ms) per page."""
    series, samples = Series(label, "ms"), []
    url: str | None = "/failed?" + "&".join([f"{k}={v}" for k, v in filters.items()] + [f"limit={PAGE}"])
    for _ in range(pages):
        if url is None:
            break
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1e3)
        assert response.status_code == 200, response.text[:500]
        found = _NEXT.search(response.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    series.add_round(samples)
    return series


async def run(bench: Bench) -> ScenarioResult:
    """Fill the store, start ``ormevents web``, time the pages (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    jobs = bench.sizes.failed_jobs
    async with bench.ormevents(QUEUE, failed_jobs={"max_count": jobs + 1, "max_age_days": 3650}):
        seconds = fill(jobs)
    result.notes.append(f"filled {jobs:,} failed jobs in {seconds:.1f} s; server: `ormevents web` (uvicorn), "
                        "client: httpx on loopback, keep-alive")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ormevents", "--redis-url", bench.redis_uri, "--queue", QUEUE,
                               "web", "--port", str(port), "--refresh", "0"], cwd=ROOT_DIR,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)  # type: ignore[arg-type]  # Popen[bytes] either way
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            walk(client, "warm-up", 3)
            by_handler = result.add(walk(client, "page of 50, filter handler (1 in 10)", bench.sizes.pages,
                                         handler=HANDLERS[3]), "ormevents")
            result.add(walk(client, "page of 50, filter handler + error type", bench.sizes.pages,
                            handler=HANDLERS[3], exception=ERRORS[1]), "ormevents")
            unfiltered = result.add(walk(client, "page of 50, no filter", bench.sizes.pages), "ormevents")
    finally:
        stop(server)  # type: ignore[arg-type]
    result.target("12: dashboard page of 50 out of 100,000 (filtered), median <= 50 ms", by_handler.median, 50.0,
                  unit="ms")
    result.target("12: dashboard page of 50 out of 100,000 (no filter), median <= 50 ms", unfiltered.median, 50.0,
                  unit="ms")
    leftovers = bench.redis.keys(f"{QUEUE}:*")
    if leftovers:
        bench.redis.delete(*leftovers)
    return result
