"""The SQL of the copies registry: which event ids are stored more than once, known at write time.

Copies arise only when the worker's pre-insert lookup misses (two workers racing across a
rebalance, a retry outside the lookup window, a direct insert), so they are rare; finding
them by grouping every row in a query's range costs a full extra scan (~0.2-1 s at 10M
rows). Instead, `EventStore.insert` runs `copied` after each insert: a primary-key lookup of
the batch's ids in `event_ids` (one row per stored row, see `schema.copies_statements`),
and, for the rare ids with more than one row, `record`: their rows go to `event_copy_rows`
(where the analytics read them), then the ids to `event_copies` (the list the analytics ask).
Rows first: a reader that sees an id listed finds its rows.

Why no copy is missed: an insert's rows are visible once it returns, so of two concurrent
inserts of the same id, the one that returns last runs its lookup after both are visible
and records the copy. A replay dropped by its deduplication token adds no row to `events`
nor to `event_ids`, so it records nothing. Recording an id again (a third copy) writes its
rows again: `event_copy_rows` may hold a row twice, which reads grouped by id ignore.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamtrack.store.queries import Query
from streamtrack.store.schema import (
    COLUMNS,
    COPIES_TABLE,
    COPY_ROWS_TABLE,
    DAILY_TABLE,
    EVENT_IDS_TABLE,
    EVENTS_TABLE,
    HOURLY_TABLE,
    daily_select,
    hourly_select,
    quote_identifier,
)

# Per (project, id), over the rows the analytics read (bots left out): earliest and latest
# time, rows, their times. Ids with more than one such row are copies.
_SUMMARY = (
    "project_id, event_id, minIf(timestamp, is_bot = 0), maxIf(timestamp, is_bot = 0), countIf(is_bot = 0),"
    " groupArrayIf(timestamp, is_bot = 0)"
)
_COPIES_ONLY = "GROUP BY project_id, event_id HAVING countIf(is_bot = 0) > 1"
SCOPE = "project_id = {scope_project:String}"
"""The caller's project: the parameter the API's project view of the store supplies (`scoped`)."""


def _table(database: str, name: str) -> str:
    return f"{quote_identifier(database)}.`{name}`"


def copied(database: str, event_ids: Sequence[str]) -> Query:
    """Rows (event_id,): those of `event_ids` stored more than once (run after their insert)."""
    sql = "\n".join(
        [
            f"SELECT DISTINCT event_id FROM {_table(database, EVENT_IDS_TABLE)}",
            "WHERE event_id IN {ids:Array(String)}",
            _COPIES_ONLY,
        ]
    )
    return Query(sql, {"ids": list(dict.fromkeys(event_ids))})


def _copy_rows_select(database: str, ids: str) -> str:
    """INSERT of every stored row of the ids that `ids` (SQL) names into `event_copy_rows`."""
    names = ", ".join(f"`{name}`" for name, _ in COLUMNS)
    return (
        f"INSERT INTO {_table(database, COPY_ROWS_TABLE)} ({names})\n"
        f"SELECT {names} FROM {_table(database, EVENTS_TABLE)} WHERE event_id IN {ids}"
    )


def record(database: str, copied_ids: Sequence[str]) -> list[Query]:
    """Statements that record `copied_ids` (from `copied`): their rows, then the registry entries."""
    if not copied_ids:
        return []
    params = {"ids": list(dict.fromkeys(copied_ids))}
    registry = "\n".join(
        [
            f"INSERT INTO {_table(database, COPIES_TABLE)}",
            f"SELECT {_SUMMARY} FROM {_table(database, EVENT_IDS_TABLE)}",
            "WHERE event_id IN {ids:Array(String)}",
            _COPIES_ONLY,
        ]
    )
    return [Query(_copy_rows_select(database, "{ids:Array(String)}"), params), Query(registry, params)]


def needs_backfill(database: str) -> Query:
    """One row (1 or 0): `events` has rows but `event_ids`, a rollup or the copies' rows are
    missing (data stored before they existed)."""
    sql = (
        f"SELECT (SELECT count() FROM {_table(database, EVENTS_TABLE)}) > 0"
        f" AND ((SELECT count() FROM {_table(database, EVENT_IDS_TABLE)}) = 0"
        f" OR (SELECT count() FROM {_table(database, DAILY_TABLE)}) = 0"
        f" OR (SELECT count() FROM {_table(database, HOURLY_TABLE)}) = 0"
        f" OR ((SELECT count() FROM {_table(database, COPIES_TABLE)}) > 0"
        f" AND (SELECT count() FROM {_table(database, COPY_ROWS_TABLE)}) = 0))"
    )
    return Query(sql, {})


def backfill(database: str) -> list[str]:
    """Rebuild the tables derived from `events` (ids, copies and their rows, daily and hourly
    rollups) from the rows stored.

    Together, from one state of `events`: the rollup's row counts are corrected by the rows
    `event_ids` counts per copied id, so both must have counted the same rows. Run it before
    writers start (`streamtrack migrate`): a row inserted meanwhile would be counted twice.
    """
    events = _table(database, EVENTS_TABLE)
    ids = _table(database, EVENT_IDS_TABLE)
    derived = (EVENT_IDS_TABLE, COPIES_TABLE, COPY_ROWS_TABLE, DAILY_TABLE, HOURLY_TABLE)
    return [
        *(f"TRUNCATE TABLE {_table(database, table)}" for table in derived),
        f"INSERT INTO {ids} SELECT event_id, timestamp, project_id, is_bot FROM {events}",
        f"INSERT INTO {_table(database, COPIES_TABLE)}\nSELECT {_SUMMARY} FROM {ids}\n{_COPIES_ONLY}",
        _copy_rows_select(database, f"(SELECT event_id FROM {_table(database, COPIES_TABLE)})"),
        f"INSERT INTO {_table(database, DAILY_TABLE)}\n{daily_select(events)}",
        f"INSERT INTO {_table(database, HOURLY_TABLE)}\n{hourly_select(events)}",
    ]


def _overlapping(start_ms: int | None, end_ms: int | None, params: dict[str, Any]) -> str:
    """WHERE clause: the caller's project's registry rows whose copies' times overlap [start_ms, end_ms)."""
    where = [SCOPE]
    if start_ms is not None:
        params["start_ms"] = start_ms
        where.append("last >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')")
    if end_ms is not None:
        params["end_ms"] = end_ms
        where.append("first < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')")
    return "WHERE " + " AND ".join(where)


def candidate_ids(database: str, start_ms: int | None, end_ms: int | None, *, limit: int) -> Query:
    """The ids with copies whose times overlap [start_ms, end_ms) (None: unbounded), at most `limit`.

    An id with only one copy in the range is an extra candidate: grouped, counted once anyway.
    """
    params: dict[str, Any] = {"limit": limit}
    where = _overlapping(start_ms, end_ms, params)
    sql = f"SELECT DISTINCT event_id FROM {_table(database, COPIES_TABLE)} {where} LIMIT {{limit:UInt32}}"
    return Query(sql, params)
