"""Handler registry and decorators: matching, conditions, payload models, registration errors."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from ormevents import Event, EventModel, RetryPolicy
from ormevents.changes.conditions import Changed, IsNow
from ormevents.errors import HandlerRegistrationError, IncompleteEventError
from ormevents.handlers import HandlerRegistry, event_handler, model_event_handler
from ormevents.handlers.registry import change_context
from ormevents.handlers.results import split_result


@pytest.fixture
def reg() -> HandlerRegistry:
    return HandlerRegistry()


def names(reg: HandlerRegistry, event: Event) -> list[str]:
    return [h.name for h in reg.match(event)]


def test_patterns_and_default_names(reg: HandlerRegistry) -> None:
    @event_handler("user.created", registry=reg)
    def exact(event: Event) -> None: ...

    @event_handler("user.*", registry=reg)
    async def any_user(event: Event) -> None: ...

    @event_handler("*.deleted", registry=reg, name="cleanup")
    def cleanup(event: Event) -> None: ...

    assert names(reg, Event(name="user.created")) == [f"{__name__}:test_patterns_and_default_names.<locals>.exact",
                                                      f"{__name__}:test_patterns_and_default_names.<locals>.any_user"]
    assert names(reg, Event(name="user.deleted")) == [f"{__name__}:test_patterns_and_default_names.<locals>.any_user", "cleanup"]
    assert names(reg, Event(name="order.created")) == []
    assert reg.get("cleanup").is_async is False  # type: ignore[union-attr]
    assert reg.get(f"{__name__}:test_patterns_and_default_names.<locals>.any_user").is_async  # type: ignore[union-attr]
    assert exact(Event(name="user.created")) is None  # the decorator returns the function unchanged


def test_conditions_use_the_event_changes_and_data(reg: HandlerRegistry) -> None:
    @event_handler("user.updated", when="status", changes_to="active", name="activate", registry=reg)
    def activate(event: Event) -> None: ...

    @event_handler("user.updated", when="status", was="new", name="left_new", registry=reg)
    def left_new(event: Event) -> None: ...

    @event_handler("user.updated", condition=Changed("plan") & IsNow("status", "active"), name="plan", registry=reg)
    def plan(event: Event) -> None: ...

    activated = Event(name="user.updated", data={"status": "active", "plan": "pro"}, changes={"status": ("new", "active")})
    assert names(reg, activated) == ["activate", "left_new"]
    plan_change = Event(name="user.updated", data={"status": "active", "plan": "pro"}, changes={"plan": ("free", "pro")})
    assert names(reg, plan_change) == ["plan"]
    nested = Event(name="user.updated", data={"status": "active"}, changes={"status": ("blocked", "active")})
    assert names(reg, nested) == ["activate"]


def test_a_condition_on_a_field_an_updated_event_does_not_carry_fails_loudly(reg: HandlerRegistry) -> None:
    @event_handler("order.updated", condition=Changed("paid_at") & IsNow("status", "paid"), name="receipt",
                   registry=reg)
    def receipt(event: Event) -> None: ...

    @event_handler("order.updated", when="paid_at", name="ledger", registry=reg)
    def ledger(event: Event) -> None: ...

    lean = Event(name="order.updated", data={"id": 1, "paid_at": 5}, changes={"paid_at": (None, 5)})
    with pytest.raises(IncompleteEventError, match="does not carry 'status'.*event_data=\\('status',\\)"):
        reg.get("receipt").wants(lean)  # type: ignore[union-attr]  # registered above
    assert names(reg, lean) == ["ledger"]  # the other handler still runs
    [(broken, error)] = reg.select(lean).broken  # a delivery parks it, with the fix in the message
    assert broken.name == "receipt" and "does not carry 'status'" in str(error)
    carried = Event(name="order.updated", data={"id": 1, "paid_at": 5, "status": "paid"}, changes={"paid_at": (None, 5)})
    assert names(reg, carried) == ["receipt", "ledger"]
    created = Event(name="order.created", data={"id": 1}, changes={"id": (None, 1)})  # whole document: absent is None
    assert not IsNow("status", "paid")(change_context(created))


class Signup(BaseModel):
    email: str


def test_payload_model_argument(reg: HandlerRegistry) -> None:
    @event_handler("user.created", name="typed", registry=reg)
    def typed(payload: Signup) -> None: ...

    handler = reg.get("typed")
    assert handler is not None and handler.payload_model is Signup
    assert handler.argument(Event(name="user.created", data={"email": "a@x.io"})) == Signup(email="a@x.io")


def test_unresolvable_annotation_is_a_registration_error(reg: HandlerRegistry) -> None:
    class Local(BaseModel):  # invisible to get_type_hints under `from __future__ import annotations`
        email: str

    with pytest.raises(HandlerRegistrationError, match="module level"):
        @event_handler("user.created", registry=reg)
        def typed(payload: Local) -> None: ...


def test_model_event_handler_by_class_or_name(reg: HandlerRegistry) -> None:
    class OrderItem(EventModel):
        sku: str

    @model_event_handler(OrderItem, "created", name="by_class", registry=reg)
    def by_class(event: Event) -> None: ...

    @model_event_handler("OrderItem", "created", name="by_name", registry=reg)
    def by_name(event: Event) -> None: ...

    assert names(reg, Event(name="order_item.created")) == ["by_class", "by_name"]


def test_retry_override_accepts_a_policy_or_a_mapping(reg: HandlerRegistry) -> None:
    @event_handler("a.b", name="one", retry=RetryPolicy(max_retries=8, backoff="exponential", jitter=True), registry=reg)
    def one(event: Event) -> None: ...

    @event_handler("a.b", name="two", retry={"max_retries": 1}, registry=reg)
    def two(event: Event) -> None: ...

    assert reg.get("one").retry.max_retries == 8  # type: ignore[union-attr]
    assert reg.get("two").retry == RetryPolicy(max_retries=1)  # type: ignore[union-attr]


def test_duplicate_names_are_rejected(reg: HandlerRegistry) -> None:
    @event_handler("a.b", name="same", registry=reg)
    def first(event: Event) -> None: ...

    with pytest.raises(HandlerRegistrationError, match="already registered"):
        @event_handler("a.c", name="same", registry=reg)
        def second(event: Event) -> None: ...

    reg.add(reg.get("same"))  # type: ignore[arg-type]  # re-registering the same function is fine (re-import)
    assert len(reg) == 1


class Payload(BaseModel):
    tag: str = ""


def _three(a: Event, b: int, c: int) -> None: ...
def _keyword_required(event: Event, session: Any, *, x: int) -> None: ...
def _keyword_session(event: Event, *, session: Any) -> None: ...
def _none() -> None: ...
def _kw_only(*, event: Event) -> None: ...
def _star(*events: Event) -> None: ...


@pytest.mark.parametrize("func", [_three, _keyword_required, _keyword_session, _none, _kw_only, _star,
                                  "not callable"])
def test_wrong_signatures_are_rejected(reg: HandlerRegistry, func: Any) -> None:
    with pytest.raises(HandlerRegistrationError):
        event_handler("a.b", registry=reg)(func)
    assert len(reg) == 0


def test_optional_extra_parameters_are_allowed(reg: HandlerRegistry) -> None:
    @event_handler("a.b", name="ok", registry=reg)
    def ok(event: Event, retries: int = 0, **extra: Any) -> None: ...

    assert reg.get("ok") is not None and reg.get("ok").wants_session is False  # type: ignore[union-attr]


def test_a_second_parameter_asks_for_the_mongodb_session(reg: HandlerRegistry) -> None:
    @event_handler("a.b", name="required", registry=reg)
    async def required(event: Event, tx: Any) -> None: ...

    @event_handler("a.b", name="named", registry=reg)
    def named(event: Event, session: Any = None) -> None: ...

    @event_handler("a.b", name="typed", registry=reg)
    async def typed(payload: Payload, session: Any) -> None: ...

    @event_handler("a.b", name="plain", registry=reg)
    async def plain(event: Event) -> None: ...

    wants = {name: reg.get(name).wants_session for name in reg.names()}  # type: ignore[union-attr]
    assert wants == {"required": True, "named": True, "typed": True, "plain": False}, wants
    assert reg.get("typed").payload_model is Payload  # type: ignore[union-attr]
    named(Event(name="a.b"))  # the default keeps it callable with the event alone


def test_a_wrong_session_signature_says_what_a_handler_takes(reg: HandlerRegistry) -> None:
    with pytest.raises(HandlerRegistrationError, match=r"optionally a MongoDB session as its second \(event, session\)"):
        event_handler("a.b", registry=reg)(_three)


@pytest.mark.parametrize(
    "kwargs",
    [{"changes_to": "x"}, {"when": "a", "when_any": ["b"]}, {"retry": 3}, {"condition": "status"},
     {"queue": ""}, {"queue": " emails"}, {"queue": 5}],
)
def test_bad_condition_or_retry_arguments(reg: HandlerRegistry, kwargs: dict[str, Any]) -> None:
    with pytest.raises(HandlerRegistrationError):
        event_handler("a.b", registry=reg, **kwargs)


def test_queue_routing_is_kept_on_the_handler(reg: HandlerRegistry) -> None:
    event_handler("email.*", name="mailer", queue="app:emails", registry=reg)(lambda event: None)
    event_handler("email.*", name="plain", registry=reg)(lambda event: None)
    assert reg.get("mailer").queue == "app:emails" and reg.get("plain").queue is None  # type: ignore[union-attr]


def test_bad_pattern_is_rejected_at_decoration(reg: HandlerRegistry) -> None:
    with pytest.raises(HandlerRegistrationError, match="pattern"):
        event_handler("User.Created", registry=reg)
    with pytest.raises(HandlerRegistrationError):
        model_event_handler(42, "created", registry=reg)  # type: ignore[arg-type]


def test_a_broken_condition_skips_only_its_handler(reg: HandlerRegistry) -> None:
    class Boom(Changed):
        def __call__(self, ctx: Any) -> bool:
            raise RuntimeError("boom")

    @event_handler("a.b", name="broken", condition=Boom("x"), registry=reg)
    def broken(event: Event) -> None: ...

    @event_handler("a.b", name="fine", registry=reg)
    def fine(event: Event) -> None: ...

    assert names(reg, Event(name="a.b")) == ["fine"]
    selection = reg.select(Event(name="a.b"))
    assert [h.name for h in selection.handlers] == ["fine"]
    assert [(h.name, str(e)) for h, e in selection.broken] == [("broken", "boom")]
    assert reg.select(Event(name="a.c")).broken == []  # a pattern that does not match never evaluates it


def test_chained_results_get_deterministic_ids_and_causation() -> None:
    parent = Event(name="user.created", data={"x": 1}, metadata={"correlation_id": "c-1"})
    children, kept = split_result([{"name": "email.sent", "payload": {"to": "a"}}, Event(name="audit.logged")], parent, "h")
    again, _ = split_result([{"name": "email.sent", "payload": {"to": "a"}}, Event(name="audit.logged")], parent, "h")
    assert [c.id for c in children] == [c.id for c in again] == [uuid.uuid5(parent.id, "h:0"), uuid.uuid5(parent.id, "h:1")]
    assert [c.name for c in children] == ["email.sent", "audit.logged"]
    assert children[0].data == {"to": "a"}
    assert all(c.metadata == {"causation_id": str(parent.id), "correlation_id": "c-1"} for c in children)
    assert kept == {"published": [str(c.id) for c in children]}
    single, _ = split_result(Event(name="a.b"), parent, "other")
    assert single[0].id == uuid.uuid5(parent.id, "other:0")


def test_plain_results_are_kept_as_json() -> None:
    parent = Event(name="user.created")
    assert split_result({"sent": 2}, parent, "h") == ([], {"sent": 2})
    assert split_result([1, 2], parent, "h") == ([], [1, 2])
    assert split_result(None, parent, "h") == ([], None)
    assert split_result(uuid.UUID(int=1), parent, "h")[1] == {"$uuid": str(uuid.UUID(int=1))}


def test_matching_is_remembered_per_event_name_and_forgotten_on_registration(
        reg: HandlerRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    @event_handler("user.*", name="audit", registry=reg)
    def audit(event: Event) -> None: ...

    assert names(reg, Event(name="user.created")) == ["audit"]
    assert names(reg, Event(name="order.created")) == []

    @event_handler("*.created", name="count", registry=reg)
    def count(event: Event) -> None: ...

    assert names(reg, Event(name="user.created")) == ["audit", "count"]  # a handler added later is seen
    assert names(reg, Event(name="order.created")) == ["count"]
    reg.remove("audit")
    assert names(reg, Event(name="user.created")) == ["count"]
    monkeypatch.setattr(sys.modules["ormevents.handlers.registry"], "NAMES_REMEMBERED", 3)
    for n in range(10):  # many distinct names: the memory stays bounded and the answers right
        assert names(reg, Event(name=f"kind{n}.created")) == ["count"]
        assert len(reg._by_name) <= 3
    reg.clear()
    assert names(reg, Event(name="user.created")) == []
