"""The example app's demo runs end to end against real servers and a real Celery worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_demo_handles_every_expected_event(mongo_uri: str, redis_uri: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "example_app", "demo", "--mongo-uri", mongo_uri,
         "--redis-uri", redis_uri.rsplit("/", 1)[0] + "/7", "--database", "shop_demo_test"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "every expected event was handled" in output
    assert "charged 25.00" in output and "attempt 3" in output           # the flaky handler recovered
    assert "reminder email sent" in output                                # the delayed event fired
    assert "shop.notify_carrier  order.shipped  builtins.RuntimeError" in output  # the failed job
    assert "carrier accepted the shipment" in output                       # the retried run
    assert "retry of shop.notify_carrier: succeeded after 1 attempt(s); failed jobs left: 0" in output
    assert "s3cret" not in output and "[REDACTED]" in output             # sensitive field stays hidden
