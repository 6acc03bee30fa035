"""The one migration entry point: every process calls `migrate`, only `streamtrack migrate` moves data.

A process that starts (API, worker, key commands) calls `migrate(store)`: it creates a fresh
database or adds what an up-to-date one lacks (every statement is `IF NOT EXISTS`), and it
refuses to start on a database whose data must be rewritten first, naming the command that
does it. Only `streamtrack migrate` (and `streamtrack dev`, before it starts any writer)
passes `rewrite=True`, so a copy never races the writers that would insert meanwhile.

Version 1 -> 2 (tenant-first events, no copies registry or rollup tables): a new table, a
copy month by month keeping each event's earliest copy, then an atomic swap. It is
resumable: each month copied is recorded, a month cut short is dropped and copied again.
Rows that old writers inserted during the copy (received after it began) are carried over
after the swap, so a rolling upgrade that forgot to stop them loses nothing.
"""

from __future__ import annotations

from typing import Any

import structlog

from streamtrack.errors import ConfigError
from streamtrack.store import deadletters
from streamtrack.store.schema import (
    BATCH_COLUMN,
    COLUMNS,
    EVENTS_TABLE,
    SCHEMA_VERSION,
    USER,
    VERSION_TABLE,
    data_table,
    events_table_statement,
    on_cluster,
    quote_identifier,
    schema_statements,
)

log = structlog.get_logger(__name__)

NEW_TABLE = "events_v2"
PROGRESS_TABLE = "schema_migration_progress"
V1_TABLES = ("event_ids_mv", "events_daily_mv", "events_hourly_mv", "event_ids", "event_copies", "event_copy_rows",
             "events_daily", "events_hourly")
"""Version 1's derived tables (views first: they feed the others)."""


def _rows(store: Any, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return store.backend.query(sql, params or {})


def _exists(store: Any, table: str) -> bool:
    sql = "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String}"
    return _rows(store, sql, {"db": store.database, "table": table}) == [(1,)]


def stored_version(store: Any) -> int | None:
    """The schema version of the database: None when it holds no events table yet."""
    if not _exists(store, data_table(EVENTS_TABLE, store.cluster)):
        return None
    if not _exists(store, VERSION_TABLE):
        return 1
    db = quote_identifier(store.database)
    [(version,)] = _rows(store, f"SELECT max(version) FROM {db}.`{VERSION_TABLE}`")
    return int(version) or 1


def migrate(store: Any, *, rewrite: bool = False) -> None:
    """Bring the schema to SCHEMA_VERSION; rewrite data only with `rewrite` (see module docstring)."""
    version = stored_version(store)
    if version is not None and version < SCHEMA_VERSION:
        if not rewrite:
            raise ConfigError(
                f"the ClickHouse database {store.database!r} has schema version {version}; this release needs"
                f" {SCHEMA_VERSION}: run `streamtrack migrate` once (with the workers stopped) before starting it"
            )
        _v1_to_v2(store)
    for statement in schema_statements(store.database, store.cluster):
        store.backend.command(statement)
    deadletters.migrate(store)  # the dead_letters table (streamtrack.store.deadletters)
    if version is None or version < SCHEMA_VERSION:
        db = quote_identifier(store.database)
        store.backend.command(f"INSERT INTO {db}.`{VERSION_TABLE}` (version) VALUES ({SCHEMA_VERSION})")


def _has_column(store: Any, table: str, column: str) -> bool:
    sql = "SELECT count() FROM system.columns WHERE database = {db:String} AND table = {table:String} AND name = {column:String}"
    return _rows(store, sql, {"db": store.database, "table": table, "column": column}) == [(1,)]


def _v1_to_v2(store: Any) -> None:
    """Copy, swap, carry over, clean up; each stage resumes where a crash left it."""
    db, here, cluster = quote_identifier(store.database), on_cluster(store.cluster), store.cluster
    old, new = data_table(EVENTS_TABLE, cluster), data_table(NEW_TABLE, cluster)
    swapped = _has_column(store, old, BATCH_COLUMN[0])  # `events` holds version 2's table already
    started_ms = None  # when the first attempt began, if one copied a month already
    if _exists(store, PROGRESS_TABLE):
        [(first, months)] = _rows(store, f"SELECT min(started_ms), count() FROM {db}.`{PROGRESS_TABLE}`")
        started_ms = int(first) if months else None
    if not swapped:
        started_ms = _copy(store, started_ms)
        store.backend.command(f"EXCHANGE TABLES {db}.`{old}` AND {db}.`{new}`{here}")
    if started_ms is not None and _exists(store, new):
        _carry_over(store, int(started_ms))
    for table in V1_TABLES:
        store.backend.command(f"DROP TABLE IF EXISTS {db}.`{data_table(table, cluster) if cluster else table}`{here} SYNC")
        if cluster:
            store.backend.command(f"DROP TABLE IF EXISTS {db}.`{table}`{here} SYNC")
    store.backend.command(f"DROP TABLE IF EXISTS {db}.`{new}`{here} SYNC")
    if cluster:
        store.backend.command(f"DROP TABLE IF EXISTS {db}.`{NEW_TABLE}`{here} SYNC")
    store.backend.command(f"DROP TABLE IF EXISTS {db}.`{PROGRESS_TABLE}`{here} SYNC")
    log.info("migrate: events table rewritten", database=store.database, version=SCHEMA_VERSION)


def _copy(store: Any, started_ms: int | None) -> int:
    """Copy the months not copied yet into the new table; returns when the first attempt began
    (the newest receipt time then: rows received later are carried over after the swap)."""
    db, here, cluster = quote_identifier(store.database), on_cluster(store.cluster), store.cluster
    new = data_table(NEW_TABLE, cluster)
    store.backend.command(events_table_statement(store.database, cluster, table=new))
    if cluster:  # the copy goes through a Distributed table: the new sharding key moves rows between shards
        store.backend.command(
            f"CREATE TABLE IF NOT EXISTS {db}.`{NEW_TABLE}`{here} AS {db}.`{new}`\n"
            f"ENGINE = Distributed('{cluster}', '{store.database}', '{new}', cityHash64(project_id, {USER}))"
        )
    store.backend.command(
        f"CREATE TABLE IF NOT EXISTS {db}.`{PROGRESS_TABLE}`{here} (month UInt32, started_ms Int64)"
        f" ENGINE = {'ReplicatedMergeTree' if cluster else 'MergeTree'} ORDER BY month"
    )
    if started_ms is None:
        [(newest,)] = _rows(store, f"SELECT toUnixTimestamp64Milli(max(received_at)) FROM {db}.`{EVENTS_TABLE}`")
        started_ms = int(newest or 0)
    done = {int(month) for (month,) in _rows(store, f"SELECT month FROM {db}.`{PROGRESS_TABLE}`")}
    months = [int(m) for (m,) in _rows(store, f"SELECT DISTINCT toYYYYMM(timestamp) FROM {db}.`{EVENTS_TABLE}` ORDER BY 1")]
    has_registry = _exists(store, "event_copies")
    for month in months:
        if month in done:
            continue
        store.backend.command(f"ALTER TABLE {db}.`{new}`{here} DROP PARTITION {month}")  # a month cut short
        store.backend.command(_copy_month(store.database, month, has_registry), {"month": month})
        store.backend.command(f"INSERT INTO {db}.`{PROGRESS_TABLE}` (month, started_ms) VALUES ({month}, {started_ms})")
        log.info("migrate: month copied", month=month)
    return started_ms


_NAMES = ", ".join(f"`{name}`" for name, _ in COLUMNS)


def _copy_month(database: str, month: int, has_registry: bool) -> str:
    """One month of events into the new table, each event's earliest copy only.

    Within the month, `LIMIT 1 BY` after ordering by time keeps the earliest copy. Copies in
    earlier months are known from version 1's copies registry (`event_copies.first`, the time
    of an id's earliest copy; it left bots out, so their ids are searched for); without it,
    every earlier month is searched for the ids.
    """
    db = quote_identifier(database)
    if has_registry:  # it listed the copies of the rows the analytics read: bots are searched for
        earlier = (f"SELECT project_id, event_id FROM {db}.`event_copies` FINAL WHERE toYYYYMM(first) < {{month:UInt32}}"
                   f" UNION ALL SELECT project_id, event_id FROM {db}.`{EVENTS_TABLE}`"
                   " WHERE is_bot = 1 AND toYYYYMM(timestamp) < {month:UInt32}")
    else:
        earlier = f"SELECT project_id, event_id FROM {db}.`{EVENTS_TABLE}` WHERE toYYYYMM(timestamp) < {{month:UInt32}}"
    return (
        f"INSERT INTO {db}.`{NEW_TABLE}` ({_NAMES})\n"
        f"SELECT {_NAMES} FROM {db}.`{EVENTS_TABLE}`\n"
        "WHERE toYYYYMM(timestamp) = {month:UInt32}\n"
        f"  AND (project_id, event_id) NOT IN ({earlier})\n"
        "ORDER BY project_id, event_id, timestamp, received_at\nLIMIT 1 BY project_id, event_id\n"
        "SETTINGS distributed_foreground_insert = 1"
    )


def _carry_over(store: Any, started_ms: int) -> None:
    """Rows the old table received after the copy began (now under NEW_TABLE, after the swap)."""
    db = quote_identifier(store.database)
    store.backend.command(
        f"INSERT INTO {db}.`{EVENTS_TABLE}` ({_NAMES})\n"
        f"SELECT {_NAMES} FROM {db}.`{NEW_TABLE}`\n"
        "WHERE received_at > fromUnixTimestamp64Milli({started:Int64}, 'UTC')\n"
        f"  AND (project_id, event_id) NOT IN (SELECT project_id, event_id FROM {db}.`{EVENTS_TABLE}` WHERE event_id IN"
        f" (SELECT event_id FROM {db}.`{NEW_TABLE}` WHERE received_at > fromUnixTimestamp64Milli({{started:Int64}}, 'UTC')))\n"
        "ORDER BY project_id, event_id, timestamp, received_at\nLIMIT 1 BY project_id, event_id\n"
        "SETTINGS distributed_foreground_insert = 1",
        {"started": started_ms},
    )

