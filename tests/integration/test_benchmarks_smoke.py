"""The benchmark scripts still run (with a tiny size); their figures are not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_write_path_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/write_path.py", "--ops", "40", "--rounds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ormevents save, Celery" in result.stdout and "x hand-rolled" in result.stdout
