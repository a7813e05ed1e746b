from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

import ormevents
from ormevents import ConfigurationError, Event, EventModel, RecordingPublisher
from ormevents.delivery.base import PublishedEvent
from ormevents.delivery.outbox.records import PendingEvent


async def test_init_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="needs database="):
        await ormevents.init(mongo_uri="mongodb://localhost:1")
    with pytest.raises(ConfigurationError, match="needs mongo_uri= or client="):
        await ormevents.init(database="app")
    with pytest.raises(ConfigurationError, match="must be a name or an async database"):
        await ormevents.init(database=42)
    with pytest.raises(ValidationError, match="batch_size"):
        await ormevents.init(database=_Db(), event_config={"batch_size": 10})


class _Db:
    name = "fake"

    def get_collection(self, name: str) -> Any:
        raise AssertionError("not used")


class Note(EventModel):
    text: str


async def test_model_works_on_mongomock(mock_recorder: RecordingPublisher) -> None:
    note = await Note.create(text="a")
    await note.update(text="b")
    assert [n.text for n in await Note.find()] == ["b"]
    await note.delete()
    assert mock_recorder.names() == ["note.created", "note.updated", "note.deleted"]


async def test_init_again_replaces_runtime(mock_recorder: RecordingPublisher) -> None:
    first = ormevents.get_runtime()
    other = RecordingPublisher()
    await ormevents.init(database=first.database, publisher=other)
    await Note.create(text="x")
    assert other.names() == ["note.created"] and mock_recorder.names() == []


async def test_init_without_a_broker_warns_and_bounds_what_it_records(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="ormevents.runtime"):
        runtime = await ormevents.init(database=_Db())
    try:
        assert "never delivered" in caplog.text and "redis_uri=" in caplog.text
        publisher = runtime.publisher
        assert isinstance(publisher, RecordingPublisher) and publisher.limit == ormevents.runtime.RECORDING_LIMIT
    finally:
        await ormevents.close()
    small = RecordingPublisher(limit=2)
    for name in ("a.one", "a.two", "a.three"):
        await small.publish(ormevents.Event(name=name))
    assert small.names() == ["a.two", "a.three"]


async def test_a_retry_policy_for_celery_workers_in_event_config_is_called_out(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="ormevents.runtime"):
        await ormevents.init(database=_Db(), redis_uri="redis://127.0.0.1:1/0",
                             event_config={"retry_policy": {"max_retries": 8}, "redis_check": "skip"})
    await ormevents.close()
    assert "ORMEVENTS_RETRY_POLICY" in caplog.text, caplog.text


async def test_recording_publisher_publish_many_takes_events_and_stored_records() -> None:
    """``publish_many`` hands each item to ``publish`` (whose ``delay``/``eta`` are keyword-only)."""
    publisher = RecordingPublisher()
    first = Event(name="user.created")
    stored = PendingEvent("e2", "user.updated", Event(name="user.updated").to_json(), datetime.now(UTC),
                          due=1_900_000_000.0)
    assert await publisher.publish_many([first, stored]) == 2
    assert publisher.published[0] == PublishedEvent(first, None, None)
    assert publisher.published[1].event.name == "user.updated"
    assert publisher.published[1].eta == datetime.fromtimestamp(1_900_000_000.0, UTC)


@pytest.mark.parametrize(("redis_uri", "broker_url", "problem"), [
    ("sentinel://cache:26379/0", None, "Redis Sentinel URL"),
    ("redis://cache:6379/0", "sentinel://cache:26379;sentinel://cache:26380", "Redis Sentinel URL"),
    ("http://cache:6379/0", None, "must start with redis://, rediss:// .TLS. or unix://"),
])
async def test_init_refuses_redis_urls_it_cannot_use(redis_uri: str, broker_url: str | None, problem: str) -> None:
    """A typed error at init() (was: redis-py's ValueError, or a Sentinel broker failing at the first publish)."""
    with pytest.raises(ConfigurationError, match=problem):
        await ormevents.init(database=_Db(), redis_uri=redis_uri, broker_url=broker_url)


def test_a_worker_refuses_a_sentinel_url_and_takes_rediss_with_verified_certificates() -> None:
    import ssl

    from ormevents.delivery.celery.config import DeliverySettings

    with pytest.raises(ConfigurationError, match="Sentinel"):
        DeliverySettings.from_env({"ORMEVENTS_REDIS_URL": "redis://cache/0", "ORMEVENTS_BROKER_URL": "sentinel://s:26379"})
    conf = DeliverySettings.from_env({"ORMEVENTS_REDIS_URL": "rediss://cache:6380/0"}).celery_conf()
    assert conf["broker_transport"] == "ormevents.delivery.celery.transport:Transport"  # hardened on TLS too
    assert conf["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}  # as redis-py does for the same URL
    with_params = DeliverySettings.from_env({"ORMEVENTS_REDIS_URL": "rediss://cache:6380/0?ssl_cert_reqs=none"})
    assert with_params.celery_conf()["broker_use_ssl"] == {}  # kombu reads the URL's own ssl_* parameters
    assert "broker_use_ssl" not in DeliverySettings(redis_url="redis://cache/0").celery_conf()


def test_attach_hardens_a_rediss_broker_and_keeps_your_tls_options() -> None:
    import ssl

    from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints

    from ormevents.handlers.registry import HandlerRegistry
    from tests.support.celery_signals import disconnect_ormevents

    for own, expected in (({}, {"ssl_cert_reqs": ssl.CERT_REQUIRED}), ({"ssl_cert_reqs": ssl.CERT_NONE},) * 2):
        app = Celery("tls", broker="rediss://cache:6380/0", set_as_current=False)
        app.conf.broker_use_ssl = own or None
        ormevents.attach_celery(app, redis_url="rediss://cache:6380/0", queue="tls:events", consume=False,
                                handlers=HandlerRegistry(), env={})
        disconnect_ormevents(app)
        assert app.conf.broker_transport == "ormevents.delivery.celery.transport:Transport"
        assert app.conf.broker_use_ssl == expected
