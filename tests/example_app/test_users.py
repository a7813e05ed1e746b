"""The shop's users in eager mode: hooks that normalise and validate, the status lifecycle and
the handlers reacting to user events (welcome email, email-change notice, cache, audit log)."""

from __future__ import annotations

import pytest

from example_app.models import InvalidTransition, User
from ormevents import REDACTED
from ormevents.testing import CapturedEvents
from tests.example_app.conftest import Shop

USER_CREATED_HANDLERS = [
    ("user.created", "shop.send_welcome"),
    ("user.created", "shop.invalidate_user_cache"),
    ("user.created", "shop.audit"),
]


async def test_create_normalises_email_and_username_and_redacts_the_password(
    shop: Shop, captured_events: CapturedEvents
) -> None:
    ann = await User.create(username="  ann ", email=" Ann@Example.COM ", password_hash="s3cret")

    assert (ann.username, ann.email, ann.status) == ("ann", "ann@example.com", "inactive")
    stored = await shop.database.users.find_one({"_id": ann.id})
    assert stored == {"_id": ann.id, "username": "ann", "email": "ann@example.com", "status": "inactive",
                      "password_hash": "s3cret"}
    [event] = captured_events
    assert event.name == "user.created" and event.object_id == ann.id
    assert event.data == {"id": ann.id, "username": "ann", "email": "ann@example.com", "status": "inactive",
                          "password_hash": REDACTED}
    assert event.changes == {"username": (None, "ann"), "email": (None, "ann@example.com"),
                             "status": (None, "inactive"), "password_hash": (REDACTED, REDACTED)}
    assert shop.handled() == USER_CREATED_HANDLERS
    assert shop.publisher.failed_jobs == []


@pytest.mark.parametrize("email", ["not-an-email", "   "])
async def test_an_invalid_email_is_rejected_and_nothing_is_written(
    shop: Shop, captured_events: CapturedEvents, email: str
) -> None:
    with pytest.raises(ValueError, match=rf"^invalid email '{email.strip()}'$"):
        await User.create(username="bob", email=email)

    assert await shop.database.users.count_documents({}) == 0
    assert len(captured_events) == 0 and shop.publisher.runs == []
    assert await shop.database.outbox_emails.count_documents({}) == 0


async def test_an_invalid_email_change_leaves_the_stored_user_alone(
    shop: Shop, captured_events: CapturedEvents
) -> None:
    ann = await User.create(username="ann", email="ann@example.com")

    with pytest.raises(ValueError, match="invalid email 'ann.example.com'"):
        await ann.update(email="ANN.example.com")

    stored = await shop.database.users.find_one({"_id": ann.id})
    assert stored["email"] == "ann@example.com"
    assert captured_events.names() == ["user.created"]
    assert shop.runs("shop.confirm_email_change") == []


async def test_status_lifecycle_emits_each_step_with_its_diff(shop: Shop, captured_events: CapturedEvents) -> None:
    ann = await User.create(username="ann", email="ann@example.com")
    await ann.update(status="active")
    await ann.update(status="banned")
    await ann.update(status="active")

    updates = captured_events.named("user.updated")
    assert [event.changes for event in updates] == [
        {"status": ("inactive", "active")},
        {"status": ("active", "banned")},
        {"status": ("banned", "active")},
    ]
    assert [event.data["status"] for event in updates] == ["active", "banned", "active"]
    assert (await shop.database.users.find_one({"_id": ann.id}))["status"] == "active"


@pytest.mark.parametrize(("path", "forbidden"), [
    (["banned"], "inactive"),       # banned users can only be re-activated
    ([], "deleted"),                 # not a status at all
])
async def test_a_forbidden_transition_is_rejected_with_a_clear_error(
    shop: Shop, captured_events: CapturedEvents, path: list[str], forbidden: str
) -> None:
    ann = await User.create(username="ann", email="ann@example.com")
    for status in path:
        await ann.update(status=status)
    current = ann.status

    with pytest.raises(InvalidTransition, match=f"^user cannot go from '{current}' to '{forbidden}'$"):
        await ann.update(status=forbidden)

    assert (await shop.database.users.find_one({"_id": ann.id}))["status"] == current
    assert len(captured_events.named("user.updated")) == len(path)


async def test_welcome_email_goes_to_the_normalised_address(shop: Shop) -> None:
    ann = await User.create(username="ann", email="Ann@Example.COM")

    [run] = shop.runs("shop.send_welcome")
    assert run.succeeded and run.attempts == 1 and run.result == {"to": "ann@example.com"}
    emails = await shop.database.outbox_emails.find({}, {"at": 0}).to_list()
    assert emails == [{"_id": f"welcome:{run.event.id}", "to": "ann@example.com", "subject": "Welcome!"}]
    assert await shop.timeline("shop.send_welcome") == [
        ("user.created", 1, "ok", "welcome email to ann@example.com"),
    ]
    await ann.update(status="active")                  # only user.created sends it
    assert len(shop.runs("shop.send_welcome")) == 1


async def test_email_change_is_confirmed_to_the_new_address_only_when_the_email_changes(shop: Shop) -> None:
    ann = await User.create(username="ann", email="ann@example.com")
    await ann.update(status="active")
    assert shop.runs("shop.confirm_email_change") == []

    await ann.update(email="Ann@New.Example")

    [run] = shop.runs("shop.confirm_email_change")
    assert run.event.changes == {"email": ("ann@example.com", "ann@new.example")}
    notice = await shop.database.outbox_emails.find_one({"_id": f"email-change:{run.event.id}"}, {"at": 0})
    assert notice == {"_id": f"email-change:{run.event.id}", "to": "ann@new.example",
                      "subject": "Your email changed from ann@example.com"}


async def test_every_user_event_invalidates_the_users_cache_key(shop: Shop) -> None:
    ann = await User.create(username="ann", email="ann@example.com")
    key = f"shop:cache:user:{ann.id}"
    try:
        await shop.redis.set(key, '{"username": "ann"}')
        await ann.update(status="active")
        assert await shop.redis.exists(key) == 0

        await shop.redis.set(key, '{"status": "active"}')
        await ann.delete()
        assert await shop.redis.exists(key) == 0
    finally:
        await shop.redis.delete(key)

    assert [run.event.name for run in shop.runs("shop.invalidate_user_cache")] == [
        "user.created", "user.updated", "user.deleted",
    ]
    assert [detail for *_, detail in await shop.timeline("shop.invalidate_user_cache")] == [
        "cache key removed=0", "cache key removed=1", "cache key removed=1",
    ]


async def test_audit_log_keeps_every_user_event_with_its_diff(shop: Shop) -> None:
    ann = await User.create(username="ann", email="ann@example.com", password_hash="s3cret")
    await ann.update(status="active", password_hash="n3w")
    await ann.delete()

    events = [run.event for run in shop.runs("shop.audit")]
    entries = {entry["_id"]: entry async for entry in shop.database.audit_log.find({})}
    assert sorted(entries) == sorted(str(event.id) for event in events)
    assert [(entry["event"], entry["object_id"], entry["changes"])
            for entry in (entries[str(event.id)] for event in events)] == [
        ("user.created", ann.id, {"username": [None, "ann"], "email": [None, "ann@example.com"],
                                  "status": [None, "inactive"], "password_hash": [REDACTED, REDACTED]}),
        ("user.updated", ann.id, {"status": ["inactive", "active"], "password_hash": [REDACTED, REDACTED]}),
        ("user.deleted", ann.id, {"username": ["ann", None], "email": ["ann@example.com", None],
                                  "status": ["active", None], "password_hash": [REDACTED, REDACTED]}),
    ]
    raw = await shop.database.audit_log.find({}).to_list()
    assert "s3cret" not in repr(raw) and "n3w" not in repr(raw)
