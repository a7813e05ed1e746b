"""Debian's Chromium for the browser tests: found on PATH, else installed with apt-get.

:func:`chromium` returns its path, or ``None`` and the reason no browser could be had (not
root, no apt-get, the package cannot be installed): the browser test skips with that reason,
and only then. Playwright drives it (``executable_path=``); ``playwright install`` is never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
"""Chromium's flags for a headless run in a container, without talking to any server but ours."""


@lru_cache(maxsize=1)
def chromium() -> tuple[str | None, str]:
    """``(path, "")`` of a Chromium binary, installing Debian's package when missing; else
    ``(None, why not)``."""
    found = shutil.which("chromium")
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "no chromium on PATH and no apt-get to install it"
    if os.geteuid() != 0:
        return None, "no chromium on PATH, and installing Debian's package needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                    ["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        if command[1] == "install" and result.returncode == 0 and shutil.which("chromium"):
            return shutil.which("chromium"), ""
    return None, f"apt-get could not install chromium: {result.stderr.strip()[-300:]}"
