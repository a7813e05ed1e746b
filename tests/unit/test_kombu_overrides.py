"""The private kombu methods the hardened Redis transport overrides are still there, shaped as
it expects, in the kombu installed now (its behaviour is tested end to end by
``tests/integration/test_delivery_hostile.py``, which pushes junk into a running worker's queue).

pyproject.toml bounds kombu (``>=5.3.4,<5.8``); these checks say what to look at before raising it.
"""

from __future__ import annotations

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base as virtual
from kombu.utils.scheduling import round_robin_cycle
from packaging.requirements import Requirement

from ormevents.delivery.celery import transport

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_kombu_is_inside_the_tested_range() -> None:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [kombu] = [Requirement(dep) for dep in deps if Requirement(dep).name == "kombu"]
    assert str(kombu.specifier) in (">=5.3.4,<5.8", "<5.8,>=5.3.4")
    assert version("kombu") in kombu.specifier


def test_overridden_methods_keep_their_signatures() -> None:
    assert list(inspect.signature(kombu_redis.Channel._brpop_read).parameters) == ["self", "options"]
    assert list(inspect.signature(kombu_redis.Channel._get).parameters)[:2] == ["self", "queue"]
    assert list(inspect.signature(virtual.Transport._deliver).parameters) == ["self", "message", "queue"]
    assert transport.Transport.Channel is transport.Channel
    assert issubclass(transport.Channel, kombu_redis.Channel) and issubclass(transport.Transport, kombu_redis.Transport)


def test_brpop_read_rotates_the_queue_before_decoding_and_delivers_through_the_connection() -> None:
    """The override finds the queue of an undecodable entry at the end of the cycle: kombu must
    rotate before ``loads`` and hand the message to ``connection._deliver``."""
    source = inspect.getsource(kombu_redis.Channel._brpop_read)
    assert source.index("_queue_cycle.rotate(") < source.index("loads(")
    assert "self.connection._deliver(" in source
    assert "loads(" in inspect.getsource(kombu_redis.Channel._get)
    cycle = round_robin_cycle(["a", "b", "c"])
    cycle.rotate("a")
    assert cycle.items[-1] == "a"  # what the override reads



def test_a_malformed_message_that_cannot_be_parked_is_logged_with_its_content(
        caplog: pytest.LogCaptureFixture) -> None:
    """Celery rejects the message before the signal that parks it: with Redis down, the error
    log line is all that is left of it (docs/reliability.md), so it carries the message."""
    from types import SimpleNamespace

    import redis
    from celery import Celery, signals  # type: ignore[import-untyped]  # celery ships no type hints

    from ormevents.delivery.celery.tasks import install
    from tests.support.celery_signals import disconnect_ormevents

    def park(raw: str, problem: str, queue: str | None) -> None:
        raise redis.ConnectionError("Redis is down")

    app = Celery("park", set_as_current=False)
    install(app, SimpleNamespace(park=park, settings=SimpleNamespace(queue_name="park:events")))  # type: ignore[arg-type]
    message = SimpleNamespace(delivery_info={"routing_key": "park:events"}, payload={"foo": 1}, body=b'{"foo": 1}',
                              headers={}, content_type="application/json")
    try:
        with caplog.at_level("ERROR", logger="ormevents.delivery.celery.tasks"):
            signals.task_rejected.send(sender=None, message=message, exc=None)
    finally:
        disconnect_ormevents(app)
    # (apps other tests attached in this process may log the same line: any one will do)
    dropped = [r.getMessage() for r in caplog.records if "could not park" in r.getMessage()]
    assert dropped and all("the message is dropped" in text and '"body": "{' in text for text in dropped), dropped
