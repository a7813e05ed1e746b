"""A worker that cannot start says why in one line naming the variable or module (exit 1),
never a Celery traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORMEVENTS_")}
    return subprocess.run([sys.executable, "-m", "celery", "-A", "ormevents.worker", "worker", "--pool=solo"],
                          cwd=cwd, env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("env, expected", [
    ({}, "ormevents worker: set ORMEVENTS_REDIS_URL (e.g. redis://localhost:6379/0)"),
    ({"ORMEVENTS_REDIS_URL": "redis://127.0.0.1:1/0", "ORMEVENTS_IMPORTS": "shop.nothere"},
     "ormevents worker: cannot import handler module 'shop.nothere' from ORMEVENTS_IMPORTS: ModuleNotFoundError"),
    ({"ORMEVENTS_REDIS_URL": "redis://127.0.0.1:1/0", "ORMEVENTS_RETRY_POLICY": "{nope"},
     "ormevents worker: ORMEVENTS_RETRY_POLICY must be a JSON object"),
])
def test_a_missing_or_wrong_setting_is_one_line(env: dict[str, str], expected: str) -> None:
    result = start_worker(env)
    assert result.returncode == 1
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_handler_module_that_raises_is_named_with_where(tmp_path: Path) -> None:
    (tmp_path / "broken_handlers.py").write_text("import json\n\nSETTINGS = json.loads('{')\n")
    result = start_worker({"ORMEVENTS_REDIS_URL": "redis://127.0.0.1:1/0", "ORMEVENTS_IMPORTS": "broken_handlers"},
                          cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot import handler module 'broken_handlers'" in result.stderr and "JSONDecodeError" in result.stderr
    assert result.stderr.rstrip().endswith(f"({tmp_path / 'broken_handlers.py'}:3)")
