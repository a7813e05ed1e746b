"""The pure parts of the event history and replay (issue 16): folding diffs, bucket updates and
summaries, write sequences, time ranges, rates, which worker runs a handler, CLI id parsing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from bson import ObjectId
from pymongo import InsertOne, UpdateOne

from ormevents import Event, EventModel, EventModelConfig, ModelDefinitionError
from ormevents.changes.fold import disagreements, fold
from ormevents.delivery.celery.replay import handler_filter, handler_queue, parse_rate
from ormevents.delivery.outbox.history import HistoryEntry, sequence_at, sequence_range
from ormevents.delivery.outbox.history_store import (
    BUCKET_SIZE,
    FOREVER_AT,
    bucket_updates,
    summary,
)
from ormevents.delivery.outbox.records import FOREVER, build_pending, next_sequence, now
from ormevents.errors import ConfigurationError, InvalidFilterError, UnknownHandlerError
from ormevents.events.redaction import REDACTED
from ormevents.handlers import event_handler
from ormevents.handlers.registry import HandlerRegistry
from ormevents.jobs.activity import WorkerSeen
from ormevents.ops.cli.history import id_candidates


def test_fold_rebuilds_created_updated_deleted_and_nested_paths() -> None:
    steps = [("created", {"a": (None, 1), "b": (None, {"c": [1, 2]}), "pin": (None, "[REDACTED]")}),
             ("updated", {"b.c.1": (2, 5), "a": (1, 2)}),
             ("audited", {}),
             ("updated", {"b.d": (None, "x"), "pin": ("[REDACTED]", "[REDACTED]")})]
    state = fold(steps)
    assert state.document == {"a": 2, "b": {"c": [1, 5], "d": "x"}, "pin": "[REDACTED]"} and state.events == 4
    assert state.redacted == {"pin"}
    assert disagreements(state, {"a": 2, "b": {"c": [1, 5], "d": "x"}, "pin": "1234"}) == {}
    assert disagreements(state, {"a": 3, "b": {"c": [1, 5]}, "pin": "1"}) == {"a": (2, 3), "b.d": ("x", None)}
    assert fold([*steps, ("deleted", {"a": (2, None)})]).document is None
    assert fold([("updated", {"x.y": (None, 1)})]).document == {"x": {"y": 1}}  # creation older than the history
    removed = fold([("created", {"m": (None, {"k": 1, "j": 2})}), ("updated", {"m.j": (2, None)})])
    assert disagreements(removed, {"m": {"k": 1}}) == {}  # a removed key folds to None: the same


def test_fold_takes_a_custom_deleted_or_created_event_for_what_it_is() -> None:
    created = ("created", {"a": (None, 1)})
    assert fold([created, ("deleted", {}), ("updated", {"a": (1, 2)})]).document == {"a": 2}  # emit("deleted")
    assert fold([created, ("updated", {"a": (1, 2)}), ("created", {})]).document == {"a": 2}  # emit("created")
    assert fold([created, ("deleted", {"a": (1, None)})]).document is None  # the model's own delete


def test_bucket_updates_group_by_document_in_write_order_with_retention() -> None:
    at = now()
    records = [build_pending(Event(name="order.updated"), home="orders", key=k, retention=r)
               for k, r in ((1, None), (2, FOREVER), (1, None), (3, 0.0))]
    updates = bucket_updates(records, at, 3600)
    by_key = {u._filter["o"]: u._doc for u in updates}
    assert set(by_key) == {1, 2}  # retention 0: not kept
    first = by_key[1]
    assert first["$push"]["i"]["$each"] == [records[0].id, records[2].id]
    assert first["$push"]["s"]["$each"] == sorted(first["$push"]["s"]["$each"])
    assert (first["$max"]["expire_at"] - at).total_seconds() == 3600 and by_key[2]["$max"]["expire_at"] == FOREVER_AT
    assert first["$setOnInsert"] == {"m": "order"} and first["$inc"] == {"count": 2}
    many = [build_pending(Event(name="order.updated"), home="orders", key=9) for _ in range(BUCKET_SIZE + 5)]
    assert [u._doc["$inc"]["count"] for u in bucket_updates(many, at, None)] == [BUCKET_SIZE, 5]
    assert all(u._doc["$max"]["expire_at"] == FOREVER_AT for u in bucket_updates(many, at, None))


def test_a_document_whose_round_starts_with_its_created_event_gets_a_new_bucket_inserted() -> None:
    at = now()
    created, updated = (build_pending(Event(name=f"order.{action}"), home="orders", key=7, retention=60.0)
                        for action in ("created", "updated"))
    later = build_pending(Event(name="order.updated"), home="orders", key=8)
    [insert, upsert] = bucket_updates([updated, later, created], at, 3600)
    assert isinstance(insert, InsertOne) and isinstance(upsert, UpdateOne) and upsert._filter["o"] == 8
    bucket = insert._doc
    assert (bucket["c"], bucket["o"], bucket["m"], bucket["count"]) == ("orders", 7, "order", 2)
    assert bucket["i"] == [created.id, updated.id] and bucket["s"] == [created.seq, updated.seq]
    assert (bucket["first"], bucket["last"]) == (created.seq, updated.seq)
    assert (bucket["expire_at"] - at).total_seconds() == 60 and bucket["h"] == [created.summary, updated.summary]
    many = [created, *(build_pending(Event(name="order.updated"), home="orders", key=7) for _ in range(BUCKET_SIZE))]
    kinds = [type(update) for update in bucket_updates(many, at, None)]
    assert kinds == [InsertOne, UpdateOne]  # the second chunk goes to a bucket with room (or a new one)


def test_summary_keeps_all_but_data_and_entries_decode_lazily() -> None:
    event = Event(name="order.updated", data={"big": "x" * 100}, changes={"n": (1, 2)}, metadata={"by": "ann"})
    text = summary(event.to_json())
    assert "big" not in text and json.loads(text)["changes"] == {"n": [1, 2]}
    entry = HistoryEntry(next_sequence(), text, full=False)
    assert (entry.name, entry.action, entry.changes, entry.metadata) == ("order.updated", "updated", {"n": (1, 2)},
                                                                        {"by": "ann"})
    with pytest.raises(ConfigurationError, match="full=True"):
        _ = entry.event
    assert HistoryEntry(1, event.to_json()).event == event


def test_sequences_increase_and_time_ranges_are_checked() -> None:
    values = [next_sequence() for _ in range(1000)]
    assert values == sorted(set(values))
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert sequence_at(moment, 0) == int(moment.timestamp()) * 10**9 == sequence_at(moment.replace(tzinfo=None), 0)
    low, high = sequence_range(moment, moment)
    assert high - low == 999  # until covers its whole microsecond
    with pytest.raises(InvalidFilterError, match="is after until"):
        sequence_range(datetime(2026, 2, 1), datetime(2026, 1, 1))
    with pytest.raises(InvalidFilterError, match="expected a datetime"):
        sequence_at("2026-01-01", 0)  # type: ignore[arg-type]  # the error under test


def test_rates() -> None:
    assert (parse_rate("500/s"), parse_rate("30/m"), parse_rate("3600/h"), parse_rate(250), parse_rate(None)) == (
        500.0, 0.5, 1.0, 250.0, None)
    for bad in ("fast", "0/s", "-5", "5/d"):
        with pytest.raises(InvalidFilterError, match="rate"):
            parse_rate(bad)


def worker(handlers: dict[str, str | None] | None, alive: bool = True,
           patterns: dict[str, str] | None = None) -> WorkerSeen:
    moment = datetime.now(UTC)
    return WorkerSeen("w1@h", "h", 1, ("q",), moment, moment, alive, handlers, patterns)


def test_a_replay_sends_a_handler_only_the_events_it_listens_to() -> None:
    registry = HandlerRegistry()

    @event_handler("acct.*", name="local.big", registry=registry, when="balance")
    def local(event: Event) -> None: ...
    def entry(name: str, changes: dict[str, list[int]]) -> HistoryEntry:
        return HistoryEntry(1, Event(name=name, changes=changes).to_json())

    created, updated = entry("acct.created", {"owner": [None, 1]}), entry("acct.updated", {"balance": [1, 2]})
    other = entry("acct.updated", {"owner": [1, 2]})
    wants = handler_filter("local.big", registry, [])  # registered here: pattern and condition
    assert [wants(e) for e in (created, updated, other, entry("order.updated", {"balance": [1, 2]}))] == \
        [False, True, False, False]
    remote = handler_filter("only.created", registry, [worker({"only.created": None},
                                                              patterns={"only.created": "acct.created"})])
    assert [remote(e) for e in (created, updated)] == [True, False]  # the pattern its workers publish
    assert handler_filter("old", registry, [worker({"old": None})])(updated)  # an older worker: the worker checks


def test_the_handler_must_be_imported_by_a_running_worker() -> None:
    registry = HandlerRegistry()

    @event_handler("order.*", name="local.only", queue="slow", registry=registry)
    def local(event: Event) -> None: ...
    assert handler_queue("audit", registry, [worker({"audit": "audits"})]) == "audits"
    with pytest.raises(UnknownHandlerError, match="no running worker has a handler named 'local.only'.*audit"):
        handler_queue("local.only", registry, [worker({"audit": None})])
    assert handler_queue("local.only", registry, [worker({"x": None}, alive=False)]) == "slow"  # none running
    assert handler_queue("local.only", registry, [worker(None)]) == "slow"  # an older worker does not say
    with pytest.raises(UnknownHandlerError, match="registered here: local.only"):
        handler_queue("nope", registry, [])


def test_history_days_is_checked_when_the_model_is_defined() -> None:
    class Kept(EventModel):
        model_config = EventModelConfig(history_days=2)
        name: str

    assert Kept.__ormevents__.retention == 2 * 86400
    for bad in (-1, "7", True):
        with pytest.raises(ModelDefinitionError, match="history_days"):
            class Bad(EventModel):
                model_config = EventModelConfig(history_days=bad)  # type: ignore[typeddict-item]  # under test
                name: str


def test_cli_ids() -> None:
    oid = ObjectId()
    assert id_candidates(str(oid)) == [oid, str(oid)]
    assert id_candidates("42") == [42, "42"] and id_candidates("ann") == ["ann"]


def test_a_sensitive_field_nested_in_a_value_carried_whole_is_not_a_disagreement() -> None:
    state = fold([("created", {"card": (None, {"number": REDACTED, "holder": "ann"})})])
    assert state.redacted == {"card.number"}
    assert disagreements(state, {"card": {"number": "4111", "holder": "ann"}}) == {}
    assert disagreements(state, {"card": {"number": "4111", "holder": "bob"}}) == {"card.holder": ("ann", "bob")}
    later = fold([("created", {"card": (None, {"number": REDACTED})}), ("updated", {"card": ({}, {"number": "x"})})])
    assert later.redacted == set()   # a later change carrying the path in clear replaces the marker


def test_a_built_record_carries_its_summary_so_the_clean_up_does_not_decode_its_json() -> None:
    event = Event(name="order.updated", data={"big": "x" * 100}, changes={"n": (1.5, None)}, metadata={"by": "ann"})
    record = build_pending(event, home="orders", key=1)
    assert record.wire == record.to_event().to_json() and record.summary == summary(record.wire)
    read_back = replace(record, summary=None)  # as from_entry() builds it: the summary comes from the wire
    [update] = bucket_updates([read_back], now(), 3600)
    assert update._doc["$push"]["h"]["$each"] == [record.summary]
