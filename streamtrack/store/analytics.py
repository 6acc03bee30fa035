"""Every SQL statement of the analytics endpoints, in one place.

Same discipline as `queries`: values travel only as `{name:Type}` parameters, the SQL is
assembled from fixed fragments (one per filter present), identifiers go through
`quote_identifier`.

Deduplication, exact and cheap. Each event id counts once, at its earliest copy among
the rows that match the query's filters (as /activities does). Grouping every row by
event id is exact but costs ~0.35-2.5 s at 10M rows on two cores, while stored copies are
rare (the worker drops nearly all redeliveries). So a query runs in two steps:
1. The reader takes the candidates from the copies registry (`copies.candidate_ids`,
   filled at write time): the ids stored more than once whose copies' times overlap the
   range (an id with one copy in the range is an extra candidate: grouped, counted once).
2. The analytic query reads `source(...)`: plain rows of every event that is not a
   candidate, plus the candidates' rows (from `event_copy_rows`, filled at write time too)
   grouped by id, one row each at its earliest copy. With no candidates (the usual case)
   it is just the rows.
If there are more than `MAX_DUPLICATES` candidates (something went badly wrong
upstream), `source` falls back to grouping every row by event id: slower, still exact.

Unique users and sessions in overview, timeseries, breakdown, top pages and active users
use `uniqCombined` (exact for small sets, a HyperLogLog estimate within ~1 % for large
ones); event counts, sessions statistics, funnels and retention are exact.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any, NamedTuple

from streamtrack.store.queries import Query
from streamtrack.store.schema import ALIASES_TABLE, COPY_ROWS_TABLE, EVENTS_TABLE, quote_identifier
from streamtrack.store.scoped import PROJECT_ROWS, SCOPE_PARAM

MAX_DUPLICATES = 10_000
"""Most candidate hashes passed to the analytic query as a parameter; beyond, group every row."""

USER = "if(user_id != '', user_id, anonymous_id)"
"""The id an event was sent with: the user id, or the anonymous id of a visitor not yet identified."""


def person(database: str) -> str:
    """Who did it, across identities: `USER`, or the user it became when an identify or alias
    call linked it (table `aliases`, the caller's project, the latest link of each id), so a
    visitor who signs up is one user, not two. One scalar subquery, evaluated once per query
    (ClickHouse caches identical scalar subqueries) and sorted, so transform's two arrays agree;
    transform looks ids up in a hash table. Cost: ~none without links; measured on 10M rows,
    ~+0.2 s with 1k links and 2-4x the raw id's time with 100k links. The daily rollup (overview's
    unique users, DAU/WAU/MAU) counts the ids as sent: a link may arrive after the day was rolled up.
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
    made a 7-day property breakdown at 10M events ~2x as slow as one by url (bench/query.py,
    p50 ~1.0 s); from the map it costs about what the url one does (~0.45 s on that machine).
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
    without_ids: tuple[str, ...] = ()
    """Not these event ids (copies whose event counts before the range: see `rollups.crossing_ids`)."""

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
        if self.without_ids:
            params["without_ids"] = list(self.without_ids)
            fragments.append("event_id NOT IN {without_ids:Array(String)}")
        return fragments


def _table(database: str, table: str = EVENTS_TABLE) -> str:
    """The rows of the caller's project, bots left out (`scoped`: the API supplies the parameter),
    from `events`, or from `event_copy_rows` (the rows of the listed copies).

    `*` leaves materialized columns out, so `property_values` is named.
    """
    return f"(SELECT *, property_values FROM {quote_identifier(database)}.`{table}` WHERE {PROJECT_ROWS})"


def _where(fragments: Sequence[str]) -> str:
    return "WHERE " + "\n  AND ".join(fragments) if fragments else ""


_IS_CANDIDATE = "event_id IN {duplicates:Array(String)}"


def source(database: str, filters: Filter, duplicates: Sequence[str] | None, params: dict[str, Any]) -> str:
    """Each matching event once, at its earliest copy: columns `ts` + SOURCE_COLUMNS (step 2).

    `duplicates`: the ids the copies registry lists (`copies.candidate_ids`); None means
    "unknown or too many": group every row. Their rows are read from `event_copy_rows`
    (ordered by project and id, a few rows per id), not from `events` a second time.
    ClickHouse drops the columns the outer query does not use.
    """
    where = filters.where(params)
    table = _table(database)
    columns = {**SOURCE_COLUMNS, "uid": person(database)}
    plain = ", ".join(["timestamp AS ts", *(f"{expr} AS {name}" for name, expr in columns.items())])
    earliest = ", ".join(
        ["min(timestamp) AS ts", "event_id"]
        + [
            f"argMin({expr}, timestamp) AS {name}"
            for name, expr in columns.items()
            if name != "event_id"
        ]
    )
    if duplicates is None:
        inner = "\n".join([f"SELECT * FROM {table}", _where(where)])
        return f"SELECT {earliest}\nFROM (\n{textwrap.indent(inner, '    ')}\n)\nGROUP BY event_id"
    if not duplicates:
        return "\n".join([f"SELECT {plain} FROM {table}", _where(where)])
    params["duplicates"] = list(duplicates)
    singles = "\n".join([f"SELECT {plain} FROM {table}", _where([*where, f"NOT {_IS_CANDIDATE}"])])
    copies = "\n".join([f"SELECT * FROM {_table(database, COPY_ROWS_TABLE)}", _where([*where, _IS_CANDIDATE])])
    return f"{singles}\nUNION ALL\nSELECT {earliest}\nFROM (\n{textwrap.indent(copies, '    ')}\n)\nGROUP BY event_id"


def _from(src: str) -> str:
    return f"FROM (\n{textwrap.indent(src, '    ')}\n)"


def overview(database: str, duplicates: Sequence[str] | None, *, recent_ms: int) -> Query:
    """All-time totals; `recent_ms`: start of "the last 5 minutes"."""
    params: dict[str, Any] = {"recent_ms": recent_ms}
    src = source(database, Filter(), duplicates, params)
    sql = "\n".join(
        [
            f"SELECT count(), {UNIQ}(uid), {UNIQ}If(session_id, session_id != ''),",
            "  toUnixTimestamp64Milli(min(ts)), toUnixTimestamp64Milli(max(ts)),",
            f"  countIf(ts >= {_ms('recent_ms')})",
            _from(src),
        ]
    )
    return Query(sql, params)


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
    duplicates: Sequence[str] | None,
    *,
    step_ms: int,
    origin_ms: int,
    group_by: str | None = None,
    top: Sequence[str] = (),
) -> Query:
    """Rows (bucket_ms, is_top, value, events, users), buckets of `step_ms` aligned on `origin_ms`.

    With `group_by`, values in `top` are their own series and the rest is one row with
    is_top = 0 per bucket ("other"). Empty buckets are absent; the reader fills them.
    """
    params: dict[str, Any] = {"step": step_ms, "origin": origin_ms}
    src = source(database, filters, duplicates, params)
    bucket = (
        "intDiv(toUnixTimestamp64Milli(ts) - {origin:Int64}, {step:Int64}) * {step:Int64} + {origin:Int64}"
    )
    if group_by is None:
        series = "1 AS is_top, '' AS value"
    else:
        params["top"] = list(top)
        value = dimension(group_by, params)
        series = f"{value} IN {{top:Array(String)}} AS is_top, if(is_top, {value}, '') AS value"
    sql = "\n".join(
        [
            f"SELECT {bucket} AS bucket, {series}, count(), {UNIQ}(uid)",
            _from(src),
            "GROUP BY bucket, is_top, value",
            "ORDER BY bucket, is_top DESC, value",
        ]
    )
    return Query(sql, params)


def breakdown(
    database: str, filters: Filter, duplicates: Sequence[str] | None, *, by: str, limit: int
) -> Query:
    """Rows (value, events, users), most events first, then by value."""
    params: dict[str, Any] = {"limit": limit}
    src = source(database, filters, duplicates, params)
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


def active_users(
    database: str, filters: Filter, duplicates: Sequence[str] | None, *, day_ms: int, week_ms: int
) -> Query:
    """(dau, wau, mau): users from `day_ms`, from `week_ms`, and over the whole filter range."""
    params: dict[str, Any] = {"day_ms": day_ms, "week_ms": week_ms}
    src = source(database, filters, duplicates, params)
    sql = "\n".join(
        [
            f"SELECT {UNIQ}If(uid, ts >= {_ms('day_ms')}), {UNIQ}If(uid, ts >= {_ms('week_ms')}), {UNIQ}(uid)",
            _from(src),
        ]
    )
    return Query(sql, params)


def unique_users(database: str, filters: Filter, duplicates: Sequence[str] | None) -> Query:
    params: dict[str, Any] = {}
    return Query(f"SELECT {UNIQ}(uid)\n{_from(source(database, filters, duplicates, params))}", params)


def sessions(database: str, filters: Filter, duplicates: Sequence[str] | None) -> Query:
    """One row: (sessions, users, median seconds, one-event sessions, page views).

    A session is its session id; its user is the user of its first event; its length is
    last event - first event; page views are its page_view events.
    """
    params: dict[str, Any] = {}
    src = source(database, filters._replace(with_session=True), duplicates, params)
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


def funnel(
    database: str, filters: Filter, duplicates: Sequence[str] | None, *, steps: Sequence[str], window_ms: int
) -> Query:
    """Rows (level, users): how many users reached exactly `level` steps (windowFunnel), level > 0."""
    params: dict[str, Any] = {"window_ms": window_ms}
    conditions = []
    for i, step in enumerate(steps):
        params[f"step_{i}"] = step
        conditions.append(f"event_type = {{step_{i}:String}}")
    src = source(database, filters._replace(event_types=tuple(dict.fromkeys(steps))), duplicates, params)
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


def retention(
    database: str, filters: Filter, duplicates: Sequence[str] | None, *, period: str, periods: int
) -> Query:
    """Rows (cohort date, users, [retained per period offset 0..periods-1]).

    A user's cohort is the period of their first event in the range; they are retained in
    offset k if they have an event in period cohort + k.
    """
    to_period, days = PERIODS[period]
    params: dict[str, Any] = {"periods": periods, "period_days": days}
    src = source(database, filters, duplicates, params)
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
