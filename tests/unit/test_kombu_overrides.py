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

