"""The benchmark suite still runs end to end in its quick mode (``make bench-quick``).

Every scenario must finish without raising (``not available`` is fine: Beanie is only in the
``bench`` extra, and ormevents has no bulk API yet). No figure is asserted: timings never go
into the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_suite_quick_mode_runs(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    scenarios = json.loads(out.read_text())["scenarios"]
    assert sorted(s["number"] for s in scenarios) == list(range(1, 15))
    assert {s["status"] for s in scenarios} <= {"ok", "not available"}
    assert "Summary (targets of issue 14)" in result.stdout
