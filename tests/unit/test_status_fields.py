"""The status fields the ledger scripts write: JSON text exactly as ``json.dumps`` writes it."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime

import pytest

from ormevents.jobs.status import handler_fields


class Level(enum.IntEnum):
    HIGH = 1


class Label(str):
    pass


@pytest.mark.parametrize("value", [
    None, True, False, 0, -5, 10**30, 1.5, -0.0, 1e300, 1733200000.123456, float("nan"), float("inf"),
    float("-inf"), "", "running", 'quote " backslash \\ newline \n é 😀', Label("x"), Level.HIGH,
    {"a": [1, None, "b"]}, [1.0, "x"], datetime(2026, 12, 3, tzinfo=UTC),
])
def test_each_field_is_the_text_json_dumps_writes(value: object) -> None:
    fields = handler_fields("billing.charge", state=value, updated_at=1.0)
    assert fields == {"h|billing.charge|state": json.dumps(value, separators=(",", ":"), default=str),
                      "h|billing.charge|updated_at": "1.0"}
