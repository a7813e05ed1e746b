"""The ormevents models the scenarios write (each scenario keeps its own collection)."""

from __future__ import annotations

from typing import Any

from pydantic import create_model

from ormevents import EventModel, EventModelConfig

STATUSES = ("active", "idle")


class Account(EventModel):
    """Scenarios 1, 8 and 9: a small document; every write changes ``balance`` and ``status``."""

    _collection = "bench_accounts"
    email: str
    balance: int = 0
    status: str = STATUSES[0]


class LatencyDoc(EventModel):
    """Scenario 4: its ``latency_doc.updated`` handler stamps its start time under ``key``."""

    model_config = EventModelConfig(event_data=("key",))  # the handler reads it; the writes change n
    _collection = "bench_latency"
    key: str
    n: int = 0


class BenchDoc(EventModel):
    """Scenarios 3 and 8: ``bench_doc.*`` events are counted per ``run``."""

    model_config = EventModelConfig(event_data=("run",))  # the handler counts by it; the writes change n
    _collection = "bench_docs"
    run: str
    n: int = 0


def wide_fields(count: int) -> dict[str, Any]:
    """``count`` fields ``f0``..: ints and short strings, alternating (a flat document)."""
    return {f"f{i}": (i if i % 2 == 0 else f"value {i}") for i in range(count)}


def wide_model(count: int) -> type[EventModel]:
    """An :class:`EventModel` ``Wide<count>`` with the fields of :func:`wide_fields`."""
    fields: dict[str, Any] = {name: (type(value), value) for name, value in wide_fields(count).items()}
    model: type[EventModel] = create_model(f"Wide{count}", __base__=EventModel, **fields)
    return model
