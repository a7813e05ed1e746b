"""Scenario 6: diff of a 50-field document (nested models, lists), one nested field changed.

Interleaved, CPU only (the document was saved once; nothing is written while timing):

* naive deep compare — ``model_dump()`` of the instance, then a recursive comparison with
  the dump taken at load time (what a hand-rolled change tracker does);
* ormevents — the instance's ``changes`` property (the same diff ``save()`` computes).

Target: ormevents' median <= 30 us and faster than the naive compare.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, create_model

from benchmarks.harness.context import Bench
from benchmarks.harness.report import ScenarioResult
from benchmarks.harness.stats import interleave
from ormevents import EventModel, RecordingPublisher

NUMBER = 6
TITLE = "diff of a 50-field document, one nested field changed"


class Address(BaseModel):
    """A nested model."""

    street: str = "1 Main St"
    city: str = "Springfield"
    zip: str = "12345"
    country: str = "US"


class Line(BaseModel):
    """An item of a list of models."""

    sku: str
    qty: int
    price: float


class Profile(BaseModel):
    """A model nested two levels deep."""

    bio: str = "hello"
    home: Address = Address()
    scores: list[int] = [1, 2, 3]


def rich_model() -> type[EventModel]:
    """``Rich``: 44 scalars, two addresses, a profile, a list of 5 lines, tags and a dict (50 fields)."""
    fields: dict[str, Any] = {}
    for i in range(44):
        kind = (int, str, float, bool)[i % 4]
        fields[f"s{i}"] = (kind, kind(i) if kind is not str else f"text {i}")
    fields.update(
        shipping=(Address, Address()), billing=(Address, Address(city="Shelbyville")), profile=(Profile, Profile()),
        lines=(list[Line], [Line(sku=f"sku{n}", qty=n, price=n * 1.5) for n in range(5)]),
        tags=(list[str], ["a", "b", "c"]), counters=(dict[str, int], {"x": 1, "y": 2}),
    )
    model: type[EventModel] = create_model("Rich", __base__=EventModel, **fields)
    return model


def naive_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Every changed path between two plain dumps (the hand-rolled deep compare)."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in old.keys() | new.keys():
            changed += naive_diff(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return changed
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        changed = []
        for n, (a, b) in enumerate(zip(old, new, strict=True)):
            changed += naive_diff(a, b, f"{path}.{n}")
        return changed
    return [] if type(old) is type(new) and old == new else [path]


async def run(bench: Bench) -> ScenarioResult:
    """Measure both diffs (see module doc)."""
    result = ScenarioResult(NUMBER, TITLE)
    async with bench.ormevents(publisher=RecordingPublisher(limit=10)):
        doc: Any = await rich_model().create()
        snapshot = doc.model_dump()
        assert len(type(doc).model_fields) == 51  # 50 fields and the id

        async def ormevents_diff(i: int) -> None:
            doc.lines[2].qty = 1000 + i  # never the saved 2
            assert len(doc.changes) == 1

        async def naive(i: int) -> None:
            doc.lines[2].qty = 1000 + i  # never the saved 2
            assert len(naive_diff(snapshot, doc.model_dump())) == 1

        series = await interleave({"naive deep compare of model_dump()s": naive, "ormevents .changes": ormevents_diff},
                                  bench.sizes.diff_ops, bench.sizes.rounds, warmup=50, unit="us", scale=1e6)
    base = result.add(series["naive deep compare of model_dump()s"], "baseline")
    orm = result.add(series["ormevents .changes"], "ormevents")
    ratio = result.compare(".changes / naive compare", orm.label, base.label)
    result.target("6: diff median <= 30 us", orm.median, 30.0, unit="us")
    result.target_ratio("6: diff faster than the naive compare (ratio < 1.0x)", ratio, 1.0)
    return result
