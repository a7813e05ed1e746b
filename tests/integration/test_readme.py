"""The README's example runs as shown: its Python block saved as ``app.py`` and run with
``python app.py``, and its worker command (every variable it needs on the line) run in the same
directory, against private servers (the URLs in both are replaced, nothing else)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.servers import stop

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def readme_code() -> tuple[str, str]:
    """The README's first Python block and its worker command line."""
    code = re.search(r"```python\n(.*?)```", README, re.S)
    worker = re.search(r"^(ORMEVENTS_\S+=.* celery -A ormevents\.worker worker)$", README, re.M)
    assert code and worker, "the README lost its example or its worker command"
    return code.group(1), worker.group(1)


def test_the_readme_example_runs_as_a_file_with_the_worker_command_as_shown(
        tmp_path: Path, mongo_uri: str, redis_uri: str) -> None:
    code, command = readme_code()
    redis_db = redis_uri.rsplit("/", 1)[0] + "/11"  # a database of its own: the default queue name is shared
    (tmp_path / "app.py").write_text(code.replace("mongodb://localhost:27017", mongo_uri)
                                     .replace("redis://localhost:6379/0", redis_db))
    words = shlex.split(command.replace("redis://localhost:6379/0", redis_db))
    env = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z_]+=.*", word))
    argv = [word for word in words if not re.fullmatch(r"[A-Z_]+=.*", word)]
    assert set(env) == {"ORMEVENTS_REDIS_URL", "ORMEVENTS_IMPORTS"} and argv[0] == "celery"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORMEVENTS_") and k != "PYTHONPATH"}
    celery = str(Path(sys.executable).with_name("celery"))
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([celery, *argv[1:]], cwd=tmp_path, env={**clean, **env}, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        run = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=clean, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "ann is active"
        deadline = time.monotonic() + 30
        while "('inactive', 'active')" not in (tmp_path / "worker.log").read_text(errors="replace"):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text(errors="replace")
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
            time.sleep(0.1)
    finally:
        stop(worker)  # type: ignore[arg-type]  # Popen[bytes]
        log.close()
