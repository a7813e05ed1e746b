"""Outbox records, the size limit, the hand-built envelope and URL redaction (pure, no server)."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import pytest

from ormevents import Event, EventTooLargeError
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.delivery.celery.envelope import EnvelopeBuilder
from ormevents.delivery.celery.sending import dispatch_message
from ormevents.delivery.outbox.cleanup import removal
from ormevents.delivery.outbox.records import (
    EVENTS_COLLECTION,
    PendingEvent,
    build_pending,
    from_entry,
    human,
    largest_parts,
)
from ormevents.model.driver_errors import largest_fields, translate
from ormevents.urls import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("redis://user:s3cret@cache:6379/0", "redis://user:***@cache:6379/0"),
    ("mongodb://app:p%40ss@db1:27017,db2:27017/shop?replicaSet=rs&authSource=admin",
     "mongodb://app:***@db1:27017,db2:27017/shop?replicaSet=rs&authSource=admin"),
    ("amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
    ("rediss://cache:6380/0?password=hunter2&ssl_cert_reqs=none", "rediss://cache:6380/0?password=***&ssl_cert_reqs=none"),
    ("redis://:pa@ss?w#rd@cache/0", "redis://:***@cache/0"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    ("mongodb+srv://u:x@cluster.example.net/?tlsCertificateKeyFilePassword=abc",
     "mongodb+srv://u:***@cluster.example.net/?tlsCertificateKeyFilePassword=***"),
    (None, "None"),
])
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url) and "hunter2" not in redact_url(url)


def test_delivery_settings_repr_hides_passwords() -> None:
    settings = DeliverySettings(redis_url="redis://:s3cret@cache:6379/0", broker_url="amqp://u:pw1@rabbit//",
                                mongo_url="mongodb://app:pw2@db/")
    text = repr(settings)
    assert "s3cret" not in text and "pw1" not in text and "pw2" not in text, text
    assert "redis://:***@cache:6379/0" in text and "queue_name='ormevents:events'" in text


def test_driver_error_messages_hide_passwords() -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    error = translate(ServerSelectionTimeoutError("mongodb://app:pw9@db:27017 timed out"), "update of User 1")
    assert error is not None and "pw9" not in str(error) and "reload" in str(error), error


def test_a_record_carries_the_wire_json_and_its_entry_round_trips() -> None:
    event = Event(name="user.updated", object_id=7, data={"name": "ann"}, changes={"name": ("an", "ann")})
    pending = build_pending(event, home="users", key=7)
    assert pending.wire == event.to_json() and pending.id == str(event.id) and pending.embedded
    back = from_entry(pending.id, pending.entry(), "users", 7)
    assert back.to_event() == event and back.event is None and back == pending
    row = build_pending(event, home=EVENTS_COLLECTION)
    assert row.key == str(event.id) and not row.embedded
    assert row.row("users", 7, intent=True)["intent"] is True


def test_an_event_over_the_limit_is_refused_naming_its_largest_parts() -> None:
    event = Event(name="user.updated", data={"avatar": "x" * 3000, "bio": "y" * 1500, "name": "ann"},
                  changes={"avatar": ("", "x" * 3000)})
    with pytest.raises(EventTooLargeError) as caught:
        build_pending(event, max_bytes=2048)
    error = caught.value
    names = [path for path, _ in error.fields]
    assert names == ["changes.avatar", "data.avatar", "data.bio"], error.fields
    assert error.size > error.limit == 2048 and "data.avatar (2.9 KiB)" in str(error) and "max_event_bytes" in str(error)
    assert build_pending(event, max_bytes=1 << 20).wire  # under the default 1 MiB it passes
    assert largest_parts(Event(name="a.b"), 3) == ()
    assert human(5) == "5 B" and human(3 << 20) == "3.0 MiB"


def test_document_too_large_names_the_largest_fields() -> None:
    from pymongo.errors import DocumentTooLarge

    document = {"$set": {"photo": b"x" * 5000, "name": "ann"}, "$push": {"_oe_outbox": {"w": "y" * 100}}}
    assert [name for name, _ in largest_fields(document)] == ["photo", "name"]
    error = translate(DocumentTooLarge("BSON document too large (20000232 bytes)"), "insert of User 1", document)
    assert error is not None and error.fields[0][0] == "photo" and "16 MiB" in str(error), error


def assert_celery_builds(ours: dict[str, Any], message: dict[str, Any]) -> None:
    """``ours`` (a hand-built kombu envelope) decodes to what Celery's own send_task produces for ``message``."""
    from kombu import Connection, Exchange, Producer, Queue

    from ormevents.delivery.celery.config import publishing_app

    app = publishing_app(DeliverySettings(redis_url="memory://", broker_url="memory://", queue_name="q:events"))
    with Connection("memory://") as connection:
        queue = Queue("q:events", Exchange("q:events"), routing_key="q:events")
        queue(connection.default_channel).declare()
        app.send_task(message["task"], args=message["args"], kwargs=message["kwargs"], task_id=message["id"],
                      argsrepr=f"<{message['task']} {message['id']}>", kwargsrepr="{}", queue="q:events",
                      connection=connection, producer=Producer(connection))
        celery_message = queue(connection.default_channel).get(no_ack=True)
    theirs_body = json.loads(celery_message.body)
    ours_body = json.loads(base64.b64decode(ours["body"]))
    assert ours_body == theirs_body, (ours_body, theirs_body)
    for header in ("task", "id", "root_id", "parent_id", "retries", "eta", "expires", "group", "timelimit",
                   "argsrepr", "kwargsrepr", "lang", "shadow", "ignore_result"):
        assert ours["headers"][header] == celery_message.headers[header], header
    assert ours["content-type"] == "application/json" and ours["content-encoding"] == "utf-8"
    assert ours["properties"]["delivery_info"]["routing_key"] == "q:events"
    assert ours["properties"]["correlation_id"] == message["id"]


def test_the_envelope_is_the_message_celery_builds() -> None:
    """The hand-built kombu envelope decodes to what Celery's own send_task produces for the same call."""
    event = Event(name="user.created", data={"name": "ann \u00e9"})
    options = DeliverySettings(redis_url="memory://", queue_name="q:events").message_options()
    ours = json.loads(EnvelopeBuilder("q:events", options).dispatch(event.to_json(), str(event.id), 1.5)[1])
    assert_celery_builds(ours, dispatch_message(event.to_dict(), None, options, 1.5))


def test_the_batch_envelope_is_the_message_celery_builds() -> None:
    """A dispatch_batch envelope decodes to what send_task builds for the same events."""
    events = [Event(name="user.created", data={"i": i, "name": "\u00e9"}) for i in range(3)]
    options = DeliverySettings(redis_url="memory://", queue_name="q:events").message_options()
    builder = EnvelopeBuilder("q:events", options)
    wires, ids = [e.to_json() for e in events], [str(e.id) for e in events]
    ours = json.loads(builder.batch(wires, ids, 2.5)[1])
    message = builder.batch_message(wires, ids, 2.5)
    assert message["task"] == "ormevents.dispatch_batch" and message["id"] == f"{ids[0]}:batch3"
    assert [e["id"] for e in message["args"][0]] == ids
    assert_celery_builds(ours, message)


def test_the_run_batch_envelope_is_the_message_celery_builds() -> None:
    """A run_handler_batch envelope (a replay's) decodes to what send_task builds for the same runs."""
    from ormevents.delivery.celery.sending import run_batch_message

    events = [Event(name="order.paid", data={"i": i}) for i in range(2)]
    kwargs = {"first_at": 1.5, "options": {"replay": True}, "due": 1.5, "run_id": "replay:audit:abc"}
    wires, ids = [e.to_json() for e in events], [str(e.id) for e in events]
    ours = json.loads(EnvelopeBuilder("q:events", None).run_batch(wires, ids, "audit", kwargs)[1])
    message = run_batch_message([e.to_dict() for e in events], "audit", 0, None, **kwargs)
    assert message["task"] == "ormevents.run_handler_batch" and message["id"] == f"{ids[0]}:audit:0:batch2"
    assert_celery_builds(ours, message)


def test_the_clean_up_pipeline_removes_only_sent_entries() -> None:
    pipeline = removal(["a", "b"])
    assert pipeline[0] == {"$unset": ["_oe_outbox.a", "_oe_outbox.b"]}
    assert pipeline[1]["$set"]["_oe_pending_at"]["$cond"][1] == "$$REMOVE"
    assert removal([]) == pipeline[1:], "no entry to remove: only the marker is set exactly"


def test_the_dispatcher_logs_one_warning_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from ormevents.delivery.celery.dispatcher import Dispatcher
    from ormevents.delivery.outbox.cleanup import Cleaner

    async def scenario() -> tuple[int, int]:
        broker_up = False

        async def push(records: object) -> int:
            if not broker_up:
                raise ConnectionError("Error 111 connecting to redis://:pw@h")
            return 1

        async def ping() -> bool:
            if not broker_up:
                raise ConnectionError("down")
            return True

        dispatcher = Dispatcher(push, ping, Cleaner(lambda: None), "redis://:***@h:1/0", errors=(ConnectionError,))
        record = build_pending(Event(name="a.b"))
        for _ in range(50):
            dispatcher.submit([record])
            await dispatcher.flush()
        broker_up = True
        for _ in range(40):
            if dispatcher.outage_since is None:
                break
            await asyncio.sleep(0.05)
        dispatcher.submit([record])
        await dispatcher.flush()
        await dispatcher.close(timeout=0.1)
        return dispatcher.handed, dispatcher.left_to_relay

    caplog.set_level(logging.INFO, logger="ormevents.delivery.celery.dispatcher")
    handed, left = asyncio.run(scenario())
    mine = [r for r in caplog.records if r.name == "ormevents.delivery.celery.dispatcher"]  # (no database to clean up)
    warnings = [r for r in mine if r.levelno == logging.WARNING]
    infos = [r for r in mine if r.levelno == logging.INFO and "is back" in r.getMessage()]
    assert len(warnings) == 1 and len(infos) == 1, [r.getMessage() for r in caplog.records]
    assert "pw@" not in caplog.text and left == 50 and handed == 1, (handed, left)


def test_the_dispatcher_pushes_after_the_writer_went_on_and_in_one_push() -> None:
    """save() submits its record from the write's task; the caller's coroutine resumes a few loop
    turns later (the shield's hops). The push waits three turns (``WRITER_FIRST``), so it never
    runs before the writer goes on, and what is submitted meanwhile travels in the same push."""
    import asyncio

    from ormevents.delivery.celery.dispatcher import Dispatcher
    from ormevents.delivery.outbox.cleanup import Cleaner

    async def scenario() -> list[object]:
        order: list[object] = []

        async def push(records: list[object]) -> int:
            order.append(("push", len(records)))
            return len(records)

        async def ping() -> bool:
            return True

        dispatcher = Dispatcher(push, ping, Cleaner(lambda: None), "redis://h:1/0")
        dispatcher.submit([build_pending(Event(name="a.b"))])
        for turn in range(2):  # the caller goes on two turns later (the shield's hops), and more
            await asyncio.sleep(0)
            order.append(("writer", turn))
        dispatcher.submit([build_pending(Event(name="a.c"))])  # a second writer, meanwhile
        await dispatcher.flush()
        await dispatcher.close(timeout=0.1)
        return order

    order = asyncio.run(scenario())
    assert order == [*(("writer", turn) for turn in range(2)), ("push", 2)], order


def test_the_dispatcher_lingers_for_a_full_message_only_while_the_workers_are_behind() -> None:
    """Behind: submissions spaced out over a few ms travel in one push, which goes as soon as
    ``batch_events`` records wait (not after the 1 s linger), or at a flush. Not behind: each
    submission is pushed on its own right away."""
    import asyncio

    from ormevents.config import OutboxConfig
    from ormevents.delivery.celery.dispatcher import Dispatcher
    from ormevents.delivery.outbox.cleanup import Cleaner

    async def scenario(behind: bool) -> tuple[list[int], list[int], float]:
        pushes: list[int] = []

        async def push(records: list[object]) -> int:
            pushes.append(len(records))
            return len(records)

        async def ping() -> bool:
            return True

        config = OutboxConfig(linger=1.0, batch_events=3)
        dispatcher = Dispatcher(push, ping, Cleaner(lambda: None), "redis://h:1/0", config, behind=lambda: behind)
        for name in ("a.b", "a.c", "a.d"):  # the third fills a message
            dispatcher.submit([build_pending(Event(name=name))])
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        full = list(pushes)
        dispatcher.submit([build_pending(Event(name="a.e"))])
        await asyncio.sleep(0.002)
        began = time.monotonic()
        await dispatcher.flush()
        took = time.monotonic() - began
        await dispatcher.close(timeout=0.1)
        return full, pushes, took

    full, pushes, took = asyncio.run(scenario(behind=True))
    assert full == [3] and pushes == [3, 1] and took < 0.5, (full, pushes, took)
    full, pushes, took = asyncio.run(scenario(behind=False))
    assert full == [1, 1, 1] and pushes == [1, 1, 1, 1], (full, pushes)


def test_the_dispatcher_lingers_before_each_push_and_survives_a_failing_one(caplog: pytest.LogCaptureFixture) -> None:
    """A record submitted while a push is in flight waits for a full message too (not pushed
    alone right after); a push that fails with something other than a broker error (a bug)
    leaves the records to the relay, logs it, and a flush still returns."""
    import asyncio

    from ormevents.config import OutboxConfig
    from ormevents.delivery.celery.dispatcher import Dispatcher
    from ormevents.delivery.outbox.cleanup import Cleaner

    async def scenario() -> tuple[list[int], int]:
        pushes: list[int] = []

        async def push(records: list[object]) -> int:
            if len(pushes) == 2:
                raise ValueError("a bug in the push")
            pushes.append(len(records))
            await asyncio.sleep(0.005)
            return len(records)

        async def ping() -> bool:
            return True

        config = OutboxConfig(linger=1.0, batch_events=4)
        dispatcher = Dispatcher(push, ping, Cleaner(lambda: None), "redis://h:1/0", config, behind=lambda: True)
        for i in range(8):  # the fifth arrives while the first message is being pushed
            dispatcher.submit([build_pending(Event(name="a.b", data={"i": i}))])
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        dispatcher.submit([build_pending(Event(name="a.c"))])
        await asyncio.wait_for(dispatcher.flush(), 2)
        left = dispatcher.left_to_relay
        await dispatcher.close(timeout=0.1)
        return pushes, left

    pushes, left = asyncio.run(scenario())
    assert pushes == [4, 4] and left == 1, (pushes, left)
    assert "a bug in the push" in caplog.text and "wait in the outbox for the relay" in caplog.text


def test_a_record_handed_over_again_is_cleaned_up_without_a_second_push() -> None:
    """A delete hands the still-pending records of its document over again as ``_oe_events``
    rows: the dispatcher pushes each event once, and cleans every copy up."""
    import asyncio

    from ormevents.delivery.celery.dispatcher import Dispatcher
    from ormevents.delivery.outbox.cleanup import Cleaner
    from ormevents.delivery.outbox.records import moved

    async def scenario() -> tuple[list[list[str]], int]:
        pushes: list[list[str]] = []

        async def push(records: list[PendingEvent]) -> int:
            pushes.append([r.id for r in records])
            return len(records)

        async def ping() -> bool:
            return True

        cleaner = Cleaner(lambda: None)
        dispatcher = Dispatcher(push, ping, cleaner, "redis://h:1/0")
        dispatcher.submit([original])
        await dispatcher.flush()
        dispatcher.submit([moved(original.id, original.entry()), other])
        await dispatcher.flush()
        waiting = len(cleaner)
        await dispatcher.close(timeout=0.1)
        return pushes, waiting

    original = build_pending(Event(name="doc.updated"), home="docs", key=1)
    other = build_pending(Event(name="doc.deleted"), home=EVENTS_COLLECTION)
    pushes, waiting = asyncio.run(scenario())
    assert pushes == [[original.id], [other.id]] and waiting == 3, (pushes, waiting)


def test_the_cleaner_tells_a_write_which_entries_it_may_drop_once() -> None:
    from ormevents.delivery.outbox.cleanup import Cleaner

    cleaner = Cleaner(lambda: None)
    first, second = (build_pending(Event(name="user.updated"), home="users", key=7) for _ in range(2))
    other = build_pending(Event(name="user.updated"), home="users", key=8)
    cleaner.add([first, second, other])
    assert cleaner.sent("users", 7) == [first.id, second.id] and cleaner.sent("users", 9) == []
    cleaner.dropped("users", 7, [first.id])
    assert cleaner.sent("users", 7) == [second.id], "an entry a write dropped must not be dropped again by the next"
    assert cleaner.sent("users", {"unhashable": 1}) == []


def test_outbox_settings_and_bad_values() -> None:
    from pydantic import ValidationError

    from ormevents import ConfigurationError
    from ormevents.config import parse_event_config
    from ormevents.delivery.celery.relay_runner import relay_settings_problem
    from ormevents.ops.cli.plumbing import check_url

    env = {"ORMEVENTS_REDIS_URL": "redis://h/0"}
    settings = DeliverySettings.from_env(env)
    assert settings.relay and settings.relay_grace == 5.0 and settings.history_seconds == 7 * 86400
    assert "ORMEVENTS_MONGO_URL" in (relay_settings_problem(settings) or "")
    full = DeliverySettings.from_env({**env, "ORMEVENTS_MONGO_URL": "mongodb://db/", "ORMEVENTS_DATABASE": "app",
                                      "ORMEVENTS_RELAY_GRACE": "2.5", "ORMEVENTS_HISTORY_SECONDS": "forever"})
    assert relay_settings_problem(full) is None and full.relay_grace == 2.5 and full.history_seconds is None
    off = DeliverySettings.from_env({**env, "ORMEVENTS_RELAY": "off", "ORMEVENTS_MONGO_URL": "mongodb://db/",
                                     "ORMEVENTS_DATABASE": "app"})
    assert "ORMEVENTS_RELAY=off" in (relay_settings_problem(off) or "")
    for name, value in (("ORMEVENTS_RELAY_GRACE", "soon"), ("ORMEVENTS_RELAY_GRACE", "-1"),
                        ("ORMEVENTS_HISTORY_SECONDS", "a week")):
        with pytest.raises(ConfigurationError, match=name):
            DeliverySettings.from_env({**env, name: value})
    with pytest.raises(ConfigurationError, match="mongodb://"):
        check_url("--mongo-url", "http://user:pw@db/")
    with pytest.raises(ValidationError):
        parse_event_config({"max_event_bytes": 10})
    with pytest.raises(ValidationError, match="typo"):
        parse_event_config({"outbox": {"typo": 1}})
    assert parse_event_config({"outbox": {"history_seconds": 0}}).outbox.history_seconds == 0
    assert parse_event_config({}).outbox.linger == 0.01
    assert parse_event_config({"outbox": {"linger": 0}}).outbox.linger == 0
    for bad in (-0.001, 2, "soon"):  # the linger: 0 to 1 second
        with pytest.raises(ValidationError, match="linger"):
            parse_event_config({"outbox": {"linger": bad}})


def test_the_replay_envelope_is_the_run_handler_message_celery_builds() -> None:
    from ormevents.delivery.celery.sending import run_message

    event = Event(name="user.created", data={"name": "ann \u00e9"})
    options = {**DeliverySettings(redis_url="memory://", queue_name="q:events").message_options(), "replay": True}
    kwargs = {"first_at": 1.5, "options": options, "due": 1.5, "run_id": "replay:audit.user"}
    ours = json.loads(EnvelopeBuilder("q:events", None).run(event.to_json(), str(event.id), "audit.user", kwargs)[1])
    assert_celery_builds(ours, run_message(event.to_dict(), "audit.user", 0, None, 1.5, options=options, due=1.5,
                                           run_id="replay:audit.user"))
