"""Every SQL statement that reads or writes events, in one place.

Values from users only ever travel as ClickHouse server-side parameters (`{name:Type}`):
the SQL text is assembled from fixed fragments, one per filter that is present, and the
values go in a separate dict that the engine parses as data. Identifiers (the database)
cannot be parameters; they come from validated settings and are checked and
backtick-quoted again by `quote_identifier`.

Reads are plain: the worker stores each event once per project (`worker.dedup`), so no
query groups by event id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from streamtrack.store.schema import COLUMNS, EVENTS_TABLE, quote_identifier

MAX_LIMIT = 100_000
"""Most events one activities query returns; pages are much smaller (the API allows 1000)."""

_INT64 = (-(2**63), 2**63 - 1)
_DEDUP_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class Query(NamedTuple):
    sql: str
    params: dict[str, Any]


def _select_list() -> str:
    """Event columns in Event field order; times as epoch milliseconds (Int64), as in Event."""
    return ", ".join(
        f"toUnixTimestamp64Milli(`{name}`)" if type_.startswith("DateTime64") else f"`{name}`"
        for name, type_ in COLUMNS
    )


SELECT_EVENT_COLUMNS = _select_list()
EVENT_COLUMN_NAMES = tuple(name for name, _ in COLUMNS)

# One fragment per optional filter, keyed by the parameter it uses.
FILTERS: dict[str, str] = {
    "project_id": "project_id = {project_id:String}",
    "user_id": "user_id = {user_id:String}",
    "event_type": "event_type = {event_type:String}",
    "session_id": "session_id = {session_id:String}",
    "start_ms": "timestamp >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')",
    "end_ms": "timestamp < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')",
}
# "Strictly older than (after_ms, after_id)" in the order (timestamp DESC, event_id DESC).
# Spelled out rather than as a tuple comparison so the time bound prunes partitions and granules.
AFTER = (
    "timestamp <= fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC')"
    " AND (timestamp < fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC') OR event_id < {after_id:String})"
)


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _check_ms(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int (epoch milliseconds), got {type(value).__name__}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{name} is out of range: {value}")
    return value


class ActivityFilter(NamedTuple):
    """The filters of an activities query; None means "no filter"."""

    user_id: str | None = None
    event_type: str | None = None
    session_id: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    project_id: str | None = None
    """The caller's project (the API always sets it; None only for internal reads)."""

    def where(self, params: dict[str, Any]) -> list[str]:
        """The WHERE fragments for the filters present, their values added to `params`."""
        for name in ("project_id", "user_id", "event_type", "session_id"):
            value = getattr(self, name)
            if value is not None:
                params[name] = _check_text(name, value)
        for name in ("start_ms", "end_ms"):
            value = getattr(self, name)
            if value is not None:
                params[name] = _check_ms(name, value)
        return [FILTERS[name] for name in FILTERS if name in params]


def _after(after: tuple[int, str], params: dict[str, Any]) -> str:
    after_ms, after_id = after
    params["after_ms"] = _check_ms("after timestamp", after_ms)
    params["after_id"] = _check_text("after event id", after_id)
    return AFTER


def _check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an int from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def _where(fragments: list[str]) -> list[str]:
    return ["WHERE " + "\n  AND ".join(fragments)] if fragments else []


def activities(
    database: str,
    filters: ActivityFilter | None = None,
    *,
    after: tuple[int, str] | None = None,
    limit: int,
) -> Query:
    """Events newest first after a keyset cursor: a plain read, each event is stored once.

    Ordering by toDate(timestamp) first follows the sorting key after the (fixed) project, so
    ClickHouse reads in key order and stops at the limit.
    """
    params: dict[str, Any] = {"limit": _check_limit(limit)}
    where = (filters or ActivityFilter()).where(params) + ([_after(after, params)] if after is not None else [])
    sql = "\n".join(
        [
            f"SELECT {SELECT_EVENT_COLUMNS}",
            f"FROM {quote_identifier(database)}.`{EVENTS_TABLE}`",
            *_where(where),
            "ORDER BY toDate(timestamp) DESC, timestamp DESC, event_id DESC",
            "LIMIT {limit:UInt32}",
        ]
    )
    return Query(sql, params)


def stats(database: str) -> Query:
    """Stored rows and distinct events (equal unless a copy slipped past the worker)."""
    return Query(
        f"SELECT count(), uniqExact(project_id, event_id) FROM {quote_identifier(database)}.`{EVENTS_TABLE}`", {}
    )


def stored_ids(database: str, project_id: str, event_ids: Sequence[str], days: Sequence[str] | None) -> Query:
    """Which of a project's `event_ids` are stored: on the given days (YYYY-MM-DD) through the
    sorting key, or on any day (`days` None) through the `by_id` projection."""
    params: dict[str, Any] = {"project": _check_text("project", project_id), "ids": [_check_text("event id", i) for i in event_ids]}
    where = ["project_id = {project:String}", "event_id IN {ids:Array(String)}"]
    if days is not None:
        params["days"] = list(days)
        where.append("toDate(timestamp) IN {days:Array(Date)}")
    sql = f"SELECT DISTINCT event_id FROM {quote_identifier(database)}.`{EVENTS_TABLE}` WHERE " + " AND ".join(where)
    return Query(sql, params)


_SINCE = (
    "toDate(timestamp) >= toDate(fromUnixTimestamp64Milli({since:Int64}, 'UTC'))"
    " AND timestamp >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
)


def recent_ids(database: str, since_ms: int, limit: int) -> Query:
    """(project_id, event_id, epoch ms) of events timed `since_ms` or later: the worker's warm-up."""
    sql = (
        f"SELECT project_id, event_id, toUnixTimestamp64Milli(timestamp) FROM {quote_identifier(database)}.`{EVENTS_TABLE}`"
        f" WHERE {_SINCE} LIMIT {{limit:UInt64}}"
    )
    return Query(sql, {"since": _check_ms("since", since_ms), "limit": limit})


def recent_minute_counts(database: str, since_ms: int) -> Query:
    """(minute ms, events) of events timed `since_ms` or later: how far back the warm-up can go."""
    sql = (
        f"SELECT toUnixTimestamp(toStartOfMinute(timestamp)) * 1000 AS minute, count() FROM {quote_identifier(database)}.`{EVENTS_TABLE}`"
        f" WHERE {_SINCE} GROUP BY minute"
    )
    return Query(sql, {"since": _check_ms("since", since_ms)})


PING = Query("SELECT 1", {})


def check_dedup_token(token: str) -> str:
    """Tokens end up inside a SQL string literal (SETTINGS cannot take parameters), so only
    a safe alphabet is accepted: a hex digest or `topic-partition-first-last` both fit."""
    if not isinstance(token, str) or not _DEDUP_TOKEN.fullmatch(token):
        raise ValueError(f"dedup token must match {_DEDUP_TOKEN.pattern}, got {token!r}")
    return token


# Settings of every insert, on both backends:
# - async_insert=0: the server (or chdb, whose default is 1) must not buffer our batches;
#   insert_deduplication_token has synchronous-insert semantics only, and batches are big already.
# - optimize_on_insert=0: collapsing equal keys inside each new part costs ~1/4 of the insert,
#   and the worker sends no copies.
INSERT_SETTINGS: dict[str, int | str] = {"async_insert": 0, "optimize_on_insert": 0}
# The cluster form adds: the Distributed table's insert returns only once every shard has its
# rows (its default is to queue them and send them later), and each shard's rows are on a
# majority of its replicas, linearized, so a read with `select_sequential_consistency` (the
# worker's dedup lookups, `DEDUP_READ_SETTINGS`) on any replica sees every insert that returned.
CLUSTER_INSERT_SETTINGS: dict[str, int | str] = {
    "distributed_foreground_insert": 1,
    "insert_quorum": "auto",
    "insert_quorum_parallel": 0,
}
CLUSTER_DEDUP_READ_SETTINGS: dict[str, int | str] = {"select_sequential_consistency": 1}


def insert_settings(dedup_token: str | None, *, cluster: bool = False) -> dict[str, str | int]:
    settings: dict[str, str | int] = {**INSERT_SETTINGS, **(CLUSTER_INSERT_SETTINGS if cluster else {})}
    if dedup_token is not None:
        settings["insert_deduplication_token"] = check_dedup_token(dedup_token)
    return settings


def settings_clause(settings: dict[str, str | int]) -> str:
    """SETTINGS cannot take parameters; every text value here is ours or checked (the token)."""
    return ", ".join(f"{name} = '{value}'" if isinstance(value, str) else f"{name} = {value}" for name, value in settings.items())


def insert_statement(database: str, table: str, columns: Sequence[str], settings: dict[str, str | int]) -> str:
    """The INSERT the embedded engine runs; its rows (Arrow) travel separately, never in the SQL.

    Columns are named so a table with more columns (added later) still accepts the batch.
    """
    names = ", ".join(quote_identifier(name) for name in columns)
    return f"INSERT INTO {quote_identifier(database)}.{quote_identifier(table)} ({names}) SETTINGS {settings_clause(settings)}"
