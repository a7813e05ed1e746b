"""The dashboard's pure helpers: diff rows, values, times, the chart layout, the bind rule and
the authentication settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ormevents import ConfigurationError
from ormevents.jobs.activity import Minute
from ormevents.ops.web.render import ago as ago_text
from ormevents.ops.web.render import chart, diff_rows, is_redacted, show, stamp
from ormevents.ops.web.security import WebAuth, check_bind, is_loopback

NOW = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)


def test_diff_rows_show_old_and_new_as_json_in_path_order() -> None:
    wire = {"changes": {"status": ["inactive", "active"], "address.city": [None, "Lyon"],
                        "total": [{"$decimal": "1.5"}, {"$decimal": "2.0"}], "odd": "not a pair"}}
    assert diff_rows(wire) == [
        ("address.city", "null", '"Lyon"'),
        ("odd", "null", '"not a pair"'),
        ("status", '"inactive"', '"active"'),
        ("total", '{"$decimal": "1.5"}', '{"$decimal": "2.0"}'),
    ]
    assert diff_rows({}) == [] and diff_rows({"changes": None}) == []


def test_values_are_json_cut_to_a_limit_and_redaction_is_recognised() -> None:
    assert show(None) == "null" and show("é") == '"é"' and show({"a": [1]}) == '{"a": [1]}'
    assert show("x" * 50, limit=10) == '"xxxxxxxxx…'
    assert is_redacted("[REDACTED]") and not is_redacted(None) and not is_redacted("REDACTED")


@pytest.mark.parametrize("delta, text", [
    (timedelta(seconds=3), "3 s ago"), (timedelta(seconds=-90), "in 2 min"), (timedelta(hours=5), "5 h ago"),
    (timedelta(days=-3), "in 3 d"), (timedelta(0), "0 s ago"),
])
def test_ago(delta: timedelta, text: str) -> None:
    assert ago_text(NOW - delta, now=NOW) == text


def test_ago_and_stamp_of_nothing() -> None:
    assert ago_text(None) == "—" and stamp(None) == "—"
    assert stamp(datetime(2030, 1, 2, 13, 0, tzinfo=UTC).astimezone()) == "2030-01-02 13:00:00 UTC"


def test_chart_scales_bars_to_the_busiest_minute() -> None:
    minutes = [Minute(NOW, {}), Minute(NOW + timedelta(minutes=1), {"dispatched": 4, "succeeded": 6, "failed": 1,
                                                                       "retried": 1}),
               Minute(NOW + timedelta(minutes=2), {"dispatched": 2, "succeeded": 4})]
    drawn = chart(minutes, width=300, height=80)
    assert drawn.peak == 8 and drawn.total_dispatched == 6 and drawn.per_minute == 2.0
    empty, busy, calm = drawn.bars
    assert (empty.ok_h, empty.bad_h, empty.x) == (0, 0, 0)
    assert (busy.ok_h, busy.bad_h, busy.x, busy.ok_y, busy.bad_y) == (60.0, 20.0, 100.0, 20.0, 0.0)
    assert calm.ok_h == 40.0 and calm.label == "12:02"
    assert chart([]).bars == [] and chart([Minute(NOW)]).peak == 1  # nothing counted: no division by zero


@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.com", False), ("", False),
])
def test_loopback(host: str, local: bool) -> None:
    assert is_loopback(host) is local


def test_a_non_local_bind_needs_a_token_or_basic_auth() -> None:
    check_bind("127.0.0.1", WebAuth())
    check_bind("0.0.0.0", WebAuth(token="x" * 16))
    check_bind("0.0.0.0", WebAuth(basic=("ops", "pw")))
    for auth in (WebAuth(), WebAuth(host_auth=True)):  # the host app's auth does not protect `ormevents web`
        with pytest.raises(ConfigurationError, match="refusing to serve the dashboard on '0.0.0.0'"):
            check_bind("0.0.0.0", auth)


def test_auth_options() -> None:
    assert WebAuth.from_options(basic_auth="ops:pa:ss").basic == ("ops", "pa:ss")
    assert not WebAuth.from_options().configured and WebAuth.from_options(host_auth=True).configured
    with pytest.raises(ConfigurationError, match="16 characters"):
        WebAuth.from_options(token="short")
    with pytest.raises(ConfigurationError, match="user:password"):
        WebAuth.from_options(basic_auth="ops:")
