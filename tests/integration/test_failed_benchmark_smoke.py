"""benchmarks/failed_jobs_paging.py still runs (tiny size); its figures are not asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.worker_process import ROOT

pytestmark = pytest.mark.integration


def test_failed_jobs_paging_benchmark_runs() -> None:
    result = subprocess.run([sys.executable, "benchmarks/failed_jobs_paging.py", "--jobs", "2000"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "filled 2000 failed jobs" in result.stdout and "all 40 pages: median" in result.stdout
