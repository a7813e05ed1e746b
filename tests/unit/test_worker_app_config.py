"""``ORMEVENTS_CELERY_CONFIG``: the module's settings win over ormevents' own (Celery's
``config_from_object`` let earlier ``conf.update`` values win, silently ignoring e.g. the
module's ``visibility_timeout``)."""

from __future__ import annotations

import pytest
from celery import Celery  # type: ignore[import-untyped]

from ormevents.delivery.celery.app import apply_config_module
from ormevents.delivery.celery.config import DeliverySettings
from ormevents.errors import ConfigurationError
from ormevents.jobs.records import FailedJobRetention


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


@pytest.mark.parametrize("carried", [None, {}, {"replay": True}, {"failed_jobs": None}, "junk",
                                     {"failed_jobs": {"max_count": "many"}}, {"failed_jobs": {"max_count": 0}},
                                     {"failed_jobs": {"unknown": 1}}, {"status_ttl": "a week"}])
def test_options_a_message_does_not_carry_or_carries_malformed_keep_the_workers_own(carried: object) -> None:
    settings = DeliverySettings(redis_url="redis://h:1/0", failed_jobs=FailedJobRetention(max_count=7), status_ttl=99)
    retention, ttl = settings.options_from(carried)
    assert retention is settings.failed_jobs and ttl == 99  # the message still runs, on the worker's settings


def test_options_a_message_carries_are_validated_and_win() -> None:
    settings = DeliverySettings(redis_url="redis://h:1/0", failed_jobs=FailedJobRetention(max_count=7), status_ttl=99)
    retention, ttl = settings.options_from({"failed_jobs": {"max_count": 5, "max_age_days": 2}, "status_ttl": 60})
    assert (retention.max_count, retention.max_age_days, ttl) == (5, 2.0, 60)
