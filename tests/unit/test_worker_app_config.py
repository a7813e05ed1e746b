"""``ORMEVENTS_CELERY_CONFIG``: the module's settings win over ormevents' own (Celery's
``config_from_object`` let earlier ``conf.update`` values win, silently ignoring e.g. the
module's ``visibility_timeout``)."""

from __future__ import annotations

import pytest
from celery import Celery  # type: ignore[import-untyped]

from ormevents.delivery.celery.app import apply_config_module
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.errors import ConfigurationError


def test_the_config_module_wins_and_transport_options_merge() -> None:
    app = Celery("t")
    app.conf.update(DeliverySettings(redis_url="redis://127.0.0.1:1/0", queue_name="q").celery_conf())
    apply_config_module(app, "tests.faults.celery_config")
    options = app.conf.broker_transport_options
    assert options["visibility_timeout"] == 10 and options["unacked_mutex_expire"] == 5   # the module's
    assert options["socket_timeout"] == 5 and "socket_connect_timeout" in options        # merged
    assert app.conf.task_acks_late is True and app.conf.task_default_queue == "q"


def test_a_config_module_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(ConfigurationError, match="no_such_config_module"):
        apply_config_module(Celery("t"), "no_such_config_module")
