"""The SQL that answers from the daily rollup (`events_daily`, see `schema.rollup_statements`).

Every query reads the caller's project only (`copies.SCOPE`), bots left out, as the raw path.

The all-time overview and DAU/WAU/MAU read up to every event (10M rows: 0.4-2 s); the
rollup holds one row per UTC day. It counts rows as stored, copies included, so each
answer is corrected with the copies registry (`event_copies`, a few rows), exactly:
- event count: minus, per copied id, its rows beyond the first (`copy_summary`; the
  registry counts rows the same way as the rollup: as inserted);
- first event: the earliest row is some event's earliest copy, as is;
- last event and the last 5 minutes: read from the raw rows of the last hour (`tail`),
  without the copied ids, which count at their earliest copy (`copy_summary`);
- unique users and sessions: a copy carries its event's user and session, so over all time
  it adds nobody. Over a day or week it adds its user only when it lies in that window while
  the event's earliest copy lies before it; `boundary_copies` counts such copies, and the
  reader answers from the raw rows when there is any.
Uniques stay `uniqCombined` estimates, as on the raw path (states merged across days).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamtrack.store.copies import SCOPE
from streamtrack.store.queries import Query
from streamtrack.store.schema import COPIES_TABLE, DAILY_TABLE, EVENTS_TABLE, quote_identifier


def _table(database: str, name: str) -> str:
    return f"{quote_identifier(database)}.`{name}`"


def _day(name: str) -> str:
    return f"toDate(fromUnixTimestamp64Milli({{{name}:Int64}}, 'UTC'))"


def totals(database: str) -> Query:
    """One row: (rows, users, sessions, first ms, last ms) over all time, copies included."""
    sql = (
        "SELECT sum(events), uniqCombinedMerge(users), uniqCombinedMerge(sessions),\n"
        "  toUnixTimestamp64Milli(min(first)), toUnixTimestamp64Milli(max(last))\n"
        f"FROM {_table(database, DAILY_TABLE)} WHERE {SCOPE}"
    )
    return Query(sql, {})


# Per copied id, its latest record: the one that saw every row (see `copies`).
_LATEST_RECORDS = "SELECT max(rows) AS n, min(first) AS earliest, argMax(times, rows) AS times"


def copy_summary(database: str, *, recent_ms: int) -> Query:
    """One row over every copied id: (rows beyond each id's first, latest earliest-copy ms,
    ids whose earliest copy is at or after `recent_ms`)."""
    sql = "\n".join(
        [
            "SELECT sum(n) - count(), toUnixTimestamp64Milli(max(earliest)),",
            "  countIf(earliest >= fromUnixTimestamp64Milli({recent_ms:Int64}, 'UTC'))",
            f"FROM ({_LATEST_RECORDS} FROM {_table(database, COPIES_TABLE)} WHERE {SCOPE} GROUP BY event_id)",
        ]
    )
    return Query(sql, {"recent_ms": recent_ms})


def tail(database: str, ids: Sequence[str], *, since_ms: int | None, recent_ms: int) -> Query:
    """One row over the rows from `since_ms` (None: all) of the ids not copied:
    (rows, last ms, rows from `recent_ms`)."""
    params: dict[str, Any] = {"ids": list(ids), "recent_ms": recent_ms}
    where = [SCOPE, "is_bot = 0", "event_id NOT IN {ids:Array(String)}"]
    if since_ms is not None:
        params["since_ms"] = since_ms
        where.append("timestamp >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')")
    sql = "\n".join(
        [
            "SELECT count(), toUnixTimestamp64Milli(max(timestamp)),",
            "  countIf(timestamp >= fromUnixTimestamp64Milli({recent_ms:Int64}, 'UTC'))",
            f"FROM {_table(database, EVENTS_TABLE)}",
            "WHERE " + " AND ".join(where),
        ]
    )
    return Query(sql, params)


def active_users(database: str, *, start_ms: int, end_ms: int, day_ms: int, week_ms: int) -> Query:
    """One row (dau, wau, mau) over the UTC days [start_ms, end_ms): users from `day_ms`,
    from `week_ms`, and all."""
    sql = "\n".join(
        [
            f"SELECT uniqCombinedMergeIf(users, day >= {_day('day_ms')}),",
            f"  uniqCombinedMergeIf(users, day >= {_day('week_ms')}), uniqCombinedMerge(users)",
            f"FROM {_table(database, DAILY_TABLE)}",
            f"WHERE {SCOPE} AND day >= {_day('start_ms')} AND day < {_day('end_ms')}",
        ]
    )
    params = {"start_ms": start_ms, "end_ms": end_ms, "day_ms": day_ms, "week_ms": week_ms}
    return Query(sql, params)


def boundary_copies(database: str, *, start_ms: int, end_ms: int, bounds: Sequence[int]) -> Query:
    """One row: how many copied rows in [start_ms, end_ms) lie at or after one of `bounds`
    while their id's earliest copy in that range lies before it."""
    params: dict[str, Any] = {"start_ms": start_ms, "end_ms": end_ms}
    crossings = []
    for i, bound in enumerate(bounds):
        params[f"bound_{i}"] = bound
        crossings.append(f"(t >= {{bound_{i}:Int64}} AND first < {{bound_{i}:Int64}})")
    in_range = (
        "arrayFilter(t -> t >= {start_ms:Int64} AND t < {end_ms:Int64},"
        " arrayMap(x -> toUnixTimestamp64Milli(x), times))"
    )
    sql = "\n".join(
        [
            f"SELECT countIf({' OR '.join(crossings) or '0'})",
            f"FROM (SELECT {in_range} AS kept, arrayMin(kept) AS first",
            f"      FROM ({_LATEST_RECORDS} FROM {_table(database, COPIES_TABLE)}",
            f"            WHERE {SCOPE} GROUP BY event_id))",
            "ARRAY JOIN kept AS t",
        ]
    )
    return Query(sql, params)
