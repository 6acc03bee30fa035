"""Every SQL statement of the analytics endpoints, in one place.

Same discipline as `queries`: values travel only as `{name:Type}` parameters, the SQL is
assembled from fixed fragments (one per filter present), identifiers go through
`quote_identifier`.

Reads are plain aggregations over the caller's project's rows: the worker stores each event
once (`worker.dedup`). Where a query's filters and aggregates fit one of the events table's
projections (`schema.PROJECTIONS`), ClickHouse answers it from the projection by itself; the
SQL here is written so that they fit when they can (time filters on whole hours and days,
users as `uid` in a project without identity links), and gives the same answer either way.

Unique users and sessions use `uniqCombined` (exact for small sets, a HyperLogLog estimate
within ~1 % for large ones); event counts, sessions statistics, funnels and retention are exact.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any, NamedTuple

from streamtrack.store.queries import Query
from streamtrack.store.schema import (
    ALIASES_TABLE,
    EVENTS_TABLE,
    HOURLY_USERS,
    SESSIONS,
    USER,
    quote_identifier,
)
from streamtrack.store.scoped import PROJECT_ROWS, SCOPE_PARAM


def person(database: str) -> str:
    """Who did it, across identities: `USER`, or the user it became when an identify or alias
    call linked it (table `aliases`, the caller's project, the latest link of each id), so a
    visitor who signs up is one user, not two. One scalar subquery, evaluated once per query
    (ClickHouse caches identical scalar subqueries) and sorted, so transform's two arrays agree;
    transform looks ids up in a hash table. Cost: ~none without links, growing with the links
    (docs/benchmarks.md, "Measurements behind design choices"). A project without links
    reads `uid` instead (`has_links`): the same ids, and a query projections can answer.
    """
    links = (
        "(SELECT arraySort(groupArray((previous_id, user_id))) FROM (SELECT previous_id, user_id"
        f" FROM {quote_identifier(database)}.`{ALIASES_TABLE}` WHERE project_id = {{{SCOPE_PARAM}:String}}"
        " ORDER BY previous_id, timestamp DESC LIMIT 1 BY previous_id))"
    )
    return f"transform({USER}, arrayMap(p -> p.1, {links}), arrayMap(p -> p.2, {links}), {USER})"


# Columns that `source` exposes, and how each is read from one stored row.
SOURCE_COLUMNS: dict[str, str] = {
    "event_id": "event_id",
    "event_type": "event_type",
    "uid": USER,
    "session_id": "session_id",
    "url": "url",
    "referrer": "referrer",
    "channel": "channel",
    "campaign_id": "campaign_id",
    "property_values": "property_values",
}

DIMENSIONS: dict[str, str] = {
    "event_type": "event_type",
    "url": "url",
    "referrer": "referrer",
    "channel": "channel",
    "campaign": "campaign_id",
}
"""Dimensions by name -> column; `property:KEY` is the other kind (see `property_value`)."""

UNIQ = "uniqCombined"


def property_value(key_param: str) -> str:
    """The text of a top-level property: a string as itself, another JSON value as its JSON text
    ('' when absent; `has_property` tells an absent key from an empty string).

    Read from `property_values`, the key -> text map ClickHouse computes once per row at insert
    (`schema.MATERIALIZED_COLUMNS`), not from the JSON: parsing `properties` per row and query
    made a property breakdown about twice as slow as one by url; from the map it costs about
    what the url one does (docs/benchmarks.md, "Measurements behind design choices").
    """
    return f"property_values[{{{key_param}:String}}]"


def has_property(key_param: str) -> str:
    """True for a row whose properties have this top-level key (as JSONHas, from `property_values`)."""
    return f"mapContains(property_values, {{{key_param}:String}})"


def _ms(name: str) -> str:
    return f"fromUnixTimestamp64Milli({{{name}:Int64}}, 'UTC')"


class Filter(NamedTuple):
    """Which stored rows a query looks at; None or empty means "no filter"."""

    start_ms: int | None = None
    end_ms: int | None = None
    event_type: str | None = None
    user: str | None = None
    url: str | None = None
    channel: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    event_types: tuple[str, ...] = ()
    """Any of these event types (funnel steps)."""
    with_session: bool = False
    """Only events that carry a session id."""
    with_url: bool = False
    """Only events that carry a url."""
    with_property: str | None = None
    """Only events that have this top-level property (a property breakdown)."""

    def where(self, params: dict[str, Any]) -> list[str]:
        """The WHERE fragments for the filters present, their values added to `params`."""
        fragments = []
        if self.start_ms is not None:
            params["start_ms"] = self.start_ms
            fragments.append(f"timestamp >= {_ms('start_ms')}")
        if self.end_ms is not None:
            params["end_ms"] = self.end_ms
            fragments.append(f"timestamp < {_ms('end_ms')}")
        if self.event_type is not None:
            params["event_type"] = self.event_type
            fragments.append("event_type = {event_type:String}")
        if self.event_types:
            params["event_types"] = list(self.event_types)
            fragments.append("event_type IN {event_types:Array(String)}")
        if self.user is not None:
            params["user"] = self.user
            fragments.append(f"{USER} = {{user:String}}")
        if self.url is not None:
            params["url"] = self.url
            fragments.append("url = {url:String}")
        if self.channel is not None:
            params["channel"] = self.channel
            fragments.append("channel = {channel:String}")
        for i, (key, value) in enumerate(self.properties):
            params[f"prop_key_{i}"], params[f"prop_value_{i}"] = key, value
            fragments.append(f"{property_value(f'prop_key_{i}')} = {{prop_value_{i}:String}}")
        if self.with_session:
            fragments.append("session_id != ''")
        if self.with_url:
            fragments.append("url != ''")
        if self.with_property is not None:
            params["has_key"] = self.with_property
            fragments.append(has_property("has_key"))
        return fragments


def _table(database: str) -> str:
    return f"{quote_identifier(database)}.`{EVENTS_TABLE}`"


def _where(fragments: Sequence[str]) -> str:
    return "WHERE " + "\n  AND ".join(fragments) if fragments else ""


def has_links(database: str) -> Query:
    """One row (1 or 0): does the caller's project have identity links (alias/identify)?"""
    return Query(
        f"SELECT count() > 0 FROM (SELECT 1 FROM {quote_identifier(database)}.`{ALIASES_TABLE}`"
        f" WHERE project_id = {{{SCOPE_PARAM}:String}} LIMIT 1)",
        {},
    )


def source(database: str, filters: Filter, params: dict[str, Any], *, links: bool = True) -> str:
    """The matching events of the caller's project: columns `ts` + SOURCE_COLUMNS.

    `uid` merges identities (`person`) when the project has links; ClickHouse drops the
    columns the outer query does not use.
    """
    columns = {**SOURCE_COLUMNS, "uid": person(database) if links else "uid"}
    select = ", ".join(["timestamp AS ts", *(f"{expr} AS {name}" for name, expr in columns.items())])
    return "\n".join([f"SELECT {select} FROM {_table(database)}", _where([PROJECT_ROWS, *filters.where(params)])])


def _from(src: str) -> str:
    return f"FROM (\n{textwrap.indent(src, '    ')}\n)"


def overview(database: str) -> Query:
    """All-time (events, users, sessions, first ms, last ms): the `daily` projection answers it."""
    sql = (
        f"SELECT count(), uniqCombined(uid), {SESSIONS},"
        " toUnixTimestamp64Milli(min(timestamp)), toUnixTimestamp64Milli(max(timestamp))"
        f"\nFROM {_table(database)}\nWHERE {PROJECT_ROWS}"
    )
    return Query(sql, {})


def count_since(database: str, start_ms: int) -> Query:
    params: dict[str, Any] = {"start_ms": start_ms}
    return Query(f"SELECT count() FROM {_table(database)} WHERE {PROJECT_ROWS} AND timestamp >= {_ms('start_ms')}", params)


def daily_users(database: str, first_day: str, last_day: str) -> Query:
    """Users with an event on the days first_day..last_day (YYYY-MM-DD): the `daily` projection answers it."""
    sql = (
        f"SELECT uniqCombined(uid) FROM {_table(database)} WHERE {PROJECT_ROWS}"
        " AND toDate(timestamp) >= {first:Date} AND toDate(timestamp) <= {last:Date}"
    )
    return Query(sql, {"first": first_day, "last": last_day})


def dimension(name: str, params: dict[str, Any]) -> str:
    """The expression of a dimension over `source`: a column, or a property (`property:KEY`)."""
    if name.startswith("property:"):
        params["dim_key"] = name.removeprefix("property:")
        return property_value("dim_key")
    return DIMENSIONS[name]


def dimension_filter(name: str | None, base: Filter) -> Filter:
    """A property breakdown only counts the events that have the property."""
    if name is not None and name.startswith("property:"):
        return base._replace(with_property=name.removeprefix("property:"))
    return base


def timeseries(
    database: str,
    filters: Filter,
    *,
    step_ms: int,
    origin_ms: int,
    first_ms: int,
    end_ms: int,
    group_by: str | None = None,
    top: Sequence[str] = (),
    links: bool = True,
) -> Query:
    """Rows (bucket_ms, is_top, value, events, users) of whole buckets of `step_ms` aligned on
    `origin_ms`, from the bucket starting at `first_ms` to the one containing `end_ms - 1`.

    Buckets of an hour or more are read by the hour (`toStartOfHour`), so that the `hourly`
    projection can answer when the filters are event type or channel. With `group_by`, values in
    `top` are their own series and the rest is one row with is_top = 0 per bucket ("other").
    Empty buckets are absent; the reader fills them. `filters`' own time bounds are not used.
    """
    params: dict[str, Any] = {"step": step_ms, "origin": origin_ms, "first_ms": first_ms, "end_ms": end_ms}
    unit = "toStartOfHour(timestamp)" if step_ms >= 3_600_000 else "toStartOfMinute(timestamp)"
    start = f"{unit} >= {_ms('first_ms')}"
    # The unit of the last event in range: its whole bucket is in (buckets are whole units).
    end = f"{unit} <= {unit.replace('timestamp', _ms('end_ms') + ' - toIntervalMillisecond(1)')}"
    bucket = f"intDiv(toUnixTimestamp({unit}) * 1000 - {{origin:Int64}}, {{step:Int64}}) * {{step:Int64}} + {{origin:Int64}}"
    where = [PROJECT_ROWS, start, end, *filters._replace(start_ms=None, end_ms=None).where(params)]
    if group_by is None:
        series = "1 AS is_top, '' AS value"
    else:
        params["top"] = list(top)
        value = dimension(group_by, params)
        series = f"{value} IN {{top:Array(String)}} AS is_top, if(is_top, {value}, '') AS value"
    users = HOURLY_USERS.replace("(uid)", f"({person(database) if links else 'uid'})")
    sql = "\n".join(
        [
            f"SELECT {bucket} AS bucket, {series}, count(), {users}",
            f"FROM {_table(database)}",
            _where(where),
            "GROUP BY bucket, is_top, value",
            "ORDER BY bucket, is_top DESC, value",
        ]
    )
    return Query(sql, params)


def breakdown(database: str, filters: Filter, *, by: str, limit: int, links: bool = True) -> Query:
    """Rows (value, events, users), most events first, then by value."""
    params: dict[str, Any] = {"limit": limit}
    src = source(database, filters, params, links=links)
    sql = "\n".join(
        [
            f"SELECT {dimension(by, params)} AS value, count() AS events, {UNIQ}(uid)",
            _from(src),
            "GROUP BY value",
            "ORDER BY events DESC, value",
            "LIMIT {limit:UInt32}",
        ]
    )
    return Query(sql, params)


def unique_users(database: str, filters: Filter, *, links: bool = True) -> Query:
    params: dict[str, Any] = {}
    return Query(f"SELECT {UNIQ}(uid)\n{_from(source(database, filters, params, links=links))}", params)


def sessions(database: str, filters: Filter, *, links: bool = True) -> Query:
    """One row: (sessions, users, median seconds, one-event sessions, page views).

    A session is its session id; its user is the user of its first event; its length is
    last event - first event; page views are its page_view events.
    """
    params: dict[str, Any] = {}
    src = source(database, filters._replace(with_session=True), params, links=links)
    per_session = "\n".join(
        [
            "SELECT session_id, argMin(uid, ts) AS user, count() AS events, countIf(event_type = 'page_view') AS pages,",
            "  (toUnixTimestamp64Milli(max(ts)) - toUnixTimestamp64Milli(min(ts))) / 1000 AS seconds",
            _from(src),
            "GROUP BY session_id",
        ]
    )
    sql = "\n".join(
        [
            "SELECT count(), uniqExact(user), quantileExactInclusive(0.5)(seconds), countIf(events = 1), sum(pages)",
            _from(per_session),
        ]
    )
    return Query(sql, params)


def funnel(database: str, filters: Filter, *, steps: Sequence[str], window_ms: int, links: bool = True) -> Query:
    """Rows (level, users): how many users reached exactly `level` steps (windowFunnel), level > 0."""
    params: dict[str, Any] = {"window_ms": window_ms}
    conditions = []
    for i, step in enumerate(steps):
        params[f"step_{i}"] = step
        conditions.append(f"event_type = {{step_{i}:String}}")
    src = source(database, filters._replace(event_types=tuple(dict.fromkeys(steps))), params, links=links)
    per_user = "\n".join(
        [
            "SELECT windowFunnel({window_ms:UInt64})(toUInt64(toUnixTimestamp64Milli(ts)), "
            + ", ".join(conditions)
            + ") AS level",
            _from(src),
            "GROUP BY uid",
        ]
    )
    sql = "\n".join(
        ["SELECT level, count()", _from(per_user), "WHERE level > 0", "GROUP BY level", "ORDER BY level"]
    )
    return Query(sql, params)


PERIODS = {"day": ("toDate", 1), "week": ("toMonday", 7)}


def retention(database: str, filters: Filter, *, period: str, periods: int, links: bool = True) -> Query:
    """Rows (cohort date, users, [retained per period offset 0..periods-1]).

    A user's cohort is the period of their first event in the range; they are retained in
    offset k if they have an event in period cohort + k.
    """
    to_period, days = PERIODS[period]
    params: dict[str, Any] = {"periods": periods, "period_days": days}
    src = source(database, filters, params, links=links)
    per_user = "\n".join(
        [
            "SELECT min(p) AS cohort, groupUniqArray(p) AS seen,",
            "  arrayMap(k -> toUInt64(has(seen, addDays(cohort, k * {period_days:UInt32}))), range({periods:UInt32})) AS back",
            f"FROM (SELECT uid, {to_period}(ts) AS p {_from(src)})",
            "GROUP BY uid",
        ]
    )
    sql = "\n".join(
        [
            "SELECT toString(cohort), count(), sumForEach(back)",
            _from(per_user),
            "GROUP BY cohort",
            "ORDER BY cohort",
        ]
    )
    return Query(sql, params)
