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
    # every handler run is shown under the write that caused it; a None stays None
    assert "password_hash: None -> '[REDACTED]'" in output and "'[REDACTED]' -> '[REDACTED]'" not in output
    grouped = output.split("each handler run under the write that caused it:")[1]
    shipped = grouped.split("#7 order.update(status='shipped')")[1]
    assert "shop.notify_carrier" in shipped and "carrier accepted the shipment" in shipped  # the retry, under #7
    paid = grouped.split("#6 ")[1].split("#7 ")[0]
    assert "charged 25.00" in paid and "carrier" not in paid
    created = grouped.split("#4 ")[1].split("#5 ")[0]
    assert "no reminder: order is paid" in created  # the delayed reminder, under the create that scheduled it
