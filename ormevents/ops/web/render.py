"""Rendering helpers of the dashboard: the Jinja2 templates and their filters, the diff rows and
the per-minute chart (an inline SVG drawn on the server: no JavaScript chart library).

Values are shown as JSON (``null``, ``"text"``, tagged values such as ``{"$oid": ...}``), exactly
as the stored event carries them; ``"[REDACTED]"`` is marked as such. Autoescaping is on for
every template, so data never becomes markup.

Imported by :mod:`ormevents.ops.web.app` and the views.

Example::

    >>> diff_rows({"changes": {"status": ["inactive", "active"]}})
    [('status', '"inactive"', '"active"')]
    >>> ago(None)
    '—'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.templating import Jinja2Templates

from ...events.redaction import REDACTED
from ...jobs.activity import Minute

HERE = Path(__file__).resolve().parent


def show(value: Any, limit: int = 2000) -> str:
    """``value`` as compact JSON text, cut at ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def is_redacted(value: Any) -> bool:
    """True for the redaction marker."""
    return value == REDACTED


def diff_rows(wire: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(path, old, new)`` rows of an event's wire-form ``changes``, old and new as JSON text."""
    rows = []
    for path, pair in sorted((wire.get("changes") or {}).items()):
        old, new = (pair[0], pair[1]) if isinstance(pair, (list, tuple)) and len(pair) == 2 else (None, pair)
        rows.append((path, show(old), show(new)))
    return rows


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """``3 s ago`` / ``in 5 min`` / ``2 h ago``; ``—`` for ``None``."""
    if when is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    size = abs(seconds)
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if size >= span:
            amount = f"{size / span:.0f} {unit}"
            break
    else:
        amount = f"{size:.0f} s"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


def stamp(when: datetime | None) -> str:
    """An ISO timestamp to the second (UTC), or ``—``."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else "—"


@dataclass(frozen=True)
class Bar:
    """One minute of the chart: where its bars go (SVG coordinates) and what they count."""

    x: float
    ok_y: float
    ok_h: float
    bad_y: float
    bad_h: float
    label: str
    dispatched: int
    succeeded: int
    failed: int


@dataclass(frozen=True)
class Chart:
    """The per-minute chart: bars of dispatched events, runs succeeded and failed (+ retried)."""

    bars: list[Bar]
    width: int
    height: int
    peak: int
    total_dispatched: int
    per_minute: float


def chart(minutes: Sequence[Minute], width: int = 1200, height: int = 140) -> Chart:
    """Lay out ``minutes`` (oldest first) as stacked bars: succeeded below, failed/retried above."""
    peak = max([1, *(m.counts.get("dispatched", 0) for m in minutes),
                *(m.counts.get("succeeded", 0) + m.counts.get("failed", 0) + m.counts.get("retried", 0)
                  for m in minutes)])
    step = width / max(len(minutes), 1)
    bars = []
    for index, minute in enumerate(minutes):
        ok = minute.counts.get("succeeded", 0)
        bad = minute.counts.get("failed", 0) + minute.counts.get("retried", 0)
        ok_h, bad_h = height * ok / peak, height * bad / peak
        bars.append(Bar(round(index * step, 1), round(height - ok_h, 1), round(ok_h, 1),
                        round(height - ok_h - bad_h, 1), round(bad_h, 1), minute.start.strftime("%H:%M"),
                        minute.counts.get("dispatched", 0), ok, bad))
    total = sum(bar.dispatched for bar in bars)
    return Chart(bars, width, height, peak, total, round(total / max(len(bars), 1), 1))


def templates() -> Jinja2Templates:
    """The dashboard's templates with the filters above (``show``, ``ago``, ``stamp``, ``diff_rows``)."""
    found = Jinja2Templates(directory=str(HERE / "templates"))
    env = found.env
    env.autoescape = True
    env.filters.update(show=show, ago=ago, stamp=stamp)
    env.globals.update(diff_rows=diff_rows, is_redacted=is_redacted, REDACTED=REDACTED)
    return found
