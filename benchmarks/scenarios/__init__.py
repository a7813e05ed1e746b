"""The scenarios of issue 14, one module each, in the order a run executes them.

Every module has ``NUMBER``, ``TITLE`` and ``async def run(bench) -> ScenarioResult``. The
order puts cheap, server-light scenarios first, the bulk writes (40,000 documents: SecantusDB's
in-memory store does not give their space back when they are dropped, and its inserts slow down
for minutes afterwards) after every other MongoDB scenario, and the delayed-events one (which
leaves 100,000 Redis entries behind) last.
"""

from __future__ import annotations

import importlib
from types import ModuleType

ORDER = ("s06_diff", "s07_failed_paging", "s12_dashboard", "s01_write_latency", "s09_loop_lag", "s10_document_size", "s08_beanie",
         "s04_handler_latency", "s02_delivery", "s11_fanout", "s13_relay", "s14_history", "s03_bulk", "s05_delayed")


def load(numbers: set[int] | None = None) -> list[ModuleType]:
    """The scenario modules in run order (only ``numbers`` if given)."""
    wanted = [name for name in ORDER if numbers is None or int(name[1:3]) in numbers]
    return [importlib.import_module(f"{__name__}.{name}") for name in wanted]
