"""The analytics SQL and parameter rules, without running anything.

What the engine answers is tested in tests/integration/test_analytics.py; here: user values
never reach the SQL text, each filter adds its fixed fragment only when present, and the
parameter limits and defaults hold.
"""

from __future__ import annotations

import pytest

from streamtrack.api import analytics_params as p
from streamtrack.errors import InvalidParameter
from streamtrack.store import analytics
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import DAY_MS, bucket_starts, ratio
from streamtrack.timestamps import parse_time

NASTY = "x'; DROP TABLE events; -- {user:String}"


def test_user_values_travel_only_as_parameters() -> None:
    filters = Filter(
        start_ms=1,
        end_ms=2,
        event_type=NASTY,
        user=NASTY,
        url=NASTY,
        channel=NASTY,
        properties=((NASTY, NASTY),),
        event_types=(NASTY,),
        with_property=NASTY,
    )
    for query in (
        analytics.breakdown("db", filters, by=f"property:{NASTY}", limit=5),
        analytics.timeseries("db", filters, step_ms=60_000, origin_ms=0, first_ms=0, end_ms=1, group_by="url", top=[NASTY]),
        analytics.funnel("db", filters, steps=[NASTY, "b"], window_ms=1000),
    ):
        assert "DROP" not in query.sql
        assert NASTY in query.params.values() or [NASTY] in query.params.values()


def test_properties_are_read_from_the_materialized_map_not_the_json() -> None:
    """Property filters, breakdowns and group-bys never parse `properties` per row."""
    filters = Filter(properties=(("plan", "pro"),), with_property="plan")
    params: dict[str, object] = {}
    assert filters.where(params) == [
        "property_values[{prop_key_0:String}] = {prop_value_0:String}",
        "mapContains(property_values, {has_key:String})",
    ]
    for query in (
        analytics.breakdown("db", filters, by="property:plan", limit=5),
        analytics.timeseries(
            "db", filters, step_ms=60_000, origin_ms=0, first_ms=0, end_ms=1, group_by="property:plan", top=["a"]
        ),
    ):
        assert "JSON" not in query.sql
        assert "property_values[{dim_key:String}]" in query.sql


def test_each_filter_adds_its_fragment_only_when_present() -> None:
    params: dict[str, object] = {}
    assert Filter().where(params) == [] and params == {}
    fragments = Filter(start_ms=5, channel="web", properties=(("plan", "pro"), ("n", "3"))).where(params)
    assert fragments[0] == "timestamp >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')"
    assert fragments[1] == "channel = {channel:String}"
    assert len(fragments) == 4
    assert params == {
        "start_ms": 5,
        "channel": "web",
        "prop_key_0": "plan",
        "prop_value_0": "pro",
        "prop_key_1": "n",
        "prop_value_1": "3",
    }


def test_reads_are_plain_rows_of_the_callers_project() -> None:
    src = analytics.source("db", Filter(), {})
    assert "GROUP BY" not in src and "UNION" not in src
    assert "WHERE project_id = {scope_project:String} AND is_bot = 0" in src


def test_identifiers_are_checked() -> None:
    with pytest.raises(ValueError, match="identifier"):
        analytics.overview("db`; DROP")


def test_buckets_align_on_utc_days_and_monday_weeks() -> None:
    start = parse_time("2026-01-07T15:00:00Z")  # a Wednesday
    weeks = bucket_starts(start, start + 8 * DAY_MS, "week")
    assert weeks == [parse_time("2026-01-05T00:00:00Z"), parse_time("2026-01-12T00:00:00Z")]
    assert bucket_starts(start, start + 1, "day") == [parse_time("2026-01-07T00:00:00Z")]
    assert len(bucket_starts(start, start + 3_600_000, "minute")) == 60


def test_auto_interval_and_the_bucket_limit() -> None:
    start = parse_time("2026-01-05T00:00:00Z")
    assert p.interval("auto", start, start + 3_600_000) == "minute"
    assert p.interval("auto", start, start + 7 * DAY_MS) == "hour"
    assert p.interval("auto", start, start + 90 * DAY_MS) == "day"
    assert p.interval("auto", start, start + 400 * DAY_MS) == "week"
    assert p.interval("minute", start, start + 2000 * 60_000) == "minute"
    with pytest.raises(InvalidParameter, match="more than 2000"):
        p.interval("minute", start, start + 2001 * 60_000)


def test_time_range_defaults_and_limits() -> None:
    now = parse_time("2026-01-31T12:00:00Z")
    assert p.time_range(None, None, now_ms=now) == (now - 7 * DAY_MS, now)
    assert p.time_range("2026-01-30", None, now_ms=now) == (parse_time("2026-01-30"), now)
    with pytest.raises(InvalidParameter, match="earlier"):
        p.time_range("2026-01-30", "2026-01-29", now_ms=now)
    with pytest.raises(InvalidParameter, match="400 days"):
        p.time_range("2024-01-01", None, now_ms=now)
    # Retention: the last N periods, the current one included.
    assert p.retention_range(None, None, period_name="week", periods=2, now_ms=now)[0] == parse_time(
        "2026-01-19"
    )
    assert p.retention_range(None, None, period_name="day", periods=1, now_ms=now)[0] == parse_time(
        "2026-01-31"
    )


def test_parameter_syntax() -> None:
    assert p.properties(["plan:pro", "url:https://x.test/a:b"]) == (
        ("plan", "pro"),
        ("url", "https://x.test/a:b"),
    )
    assert p.dimension("property:plan", "dimension") == "property:plan"
    for bad in ("plan", ":x"):
        with pytest.raises(InvalidParameter):
            p.properties([bad])
    with pytest.raises(InvalidParameter, match="2 to 10"):
        p.funnel_steps(["a"] * 11)
    assert p.day("2026-01-31", now_ms=0) == parse_time("2026-01-31")
    assert p.day(None, now_ms=parse_time("2026-01-31T23:59:00Z")) == parse_time("2026-01-31")


def test_ratio_rounds_and_never_divides_by_zero() -> None:
    assert (ratio(1, 3), ratio(5, 0)) == (0.3333, 0.0)
