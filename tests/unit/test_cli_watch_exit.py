"""``ormevents watch`` exits 3 ("cannot reach") only when MongoDB or Redis cannot be reached (review 13 #9)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from pymongo.errors import ServerSelectionTimeoutError

from ormevents.ops.cli import build
from ormevents.ops.cli import watch as watch_command


def _run(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> Any:
    async def failing(*args: Any) -> None:
        raise error

    monkeypatch.setattr(watch_command, "_watch", failing)
    return CliRunner().invoke(build(), ["watch", "--model", "tests.integration.models:Member",
                                        "--mongo-url", "mongodb://localhost:1", "--database", "d"])


def test_an_unreachable_server_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, ServerSelectionTimeoutError("no servers"))
    assert result.exit_code == 3 and "cannot reach" in result.output


def test_another_error_is_not_reported_as_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, KeyError("a bug"))
    assert result.exit_code == 1 and isinstance(result.exception, KeyError) and "cannot reach" not in result.output
