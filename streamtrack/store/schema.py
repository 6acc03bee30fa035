"""The ClickHouse schema of StreamTrack: tables, their keys, and why.

Each event is stored once per project, so every read is a plain aggregation. What makes
that hold is split between the worker (it drops copies before the insert: `worker.dedup`)
and this table's shape (what slips past collapses by itself):

- `events` is a ReplacingMergeTree keyed tenant first, `(project_id, toDate(timestamp),
  event_type, event_id)`: a project's queries skip every other tenant's granules, and two
  copies of one event (same project, id, day and type: a replayed record, a client retry
  with its own timestamp) share the key, so merges collapse them. The exact timestamp is not
  in the key, so a copy re-stamped within the day collapses too.
- Projections that ClickHouse keeps current through inserts, merges, lightweight deletes
  (erasure) and TTL (retention), so no code of ours maintains derived data:
  `by_id` (the worker's lookup of an id without its day), `daily` (all-time totals and active
  users) and `hourly` (timeseries and breakdowns by type or channel). ClickHouse answers
  from a projection by itself when a query's filters and aggregates fit it.
- `uid` (the id an event was sent with) and `property_values` are computed at insert.
- `insert_batch` names the insert that stored a row: a worker that finds its batch's commit
  fenced deletes its own rows of the events another insert stored (`worker.fencing`).

In the cluster form the rows live in `events_local` (replicated per shard) and `events` is a
Distributed table over it, sharded by project and user: copies of an event (same user) and a
user's funnel steps meet on one shard. Inserts through it are synchronous (`queries`).
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 2
"""Version 1 (until 2026-12) had the copies registry and rollup tables; `migrate` moves it to 2."""

EVENTS_TABLE = "events"
LOCAL_TABLE = "events_local"
IDENTITIES_TABLE = "identities"
ALIASES_TABLE = "aliases"
ERASURES_TABLE = "erasures"
VERSION_TABLE = "schema_version"

# Column name -> ClickHouse type, in the order of `streamtrack.events.Event`'s fields.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "String"),
    ("event_type", "LowCardinality(String)"),
    ("timestamp", "DateTime64(3, 'UTC')"),
    ("received_at", "DateTime64(3, 'UTC')"),
    ("user_id", "String"),
    ("anonymous_id", "String"),
    ("session_id", "String"),
    ("url", "String"),
    ("referrer", "String"),
    ("channel", "LowCardinality(String)"),
    ("campaign_id", "String"),
    ("tags", "Array(String)"),
    ("properties", "String"),  # the JSON object text: exact round trip, no schema inference
    ("ip", "String"),
    ("user_agent", "String"),
    ("project_id", "LowCardinality(String) DEFAULT 'default'"),
    ("is_bot", "UInt8"),
)
BATCH_COLUMN = ("insert_batch", "UInt64")
"""Written with every row (not an Event field): which insert stored it."""

USER = "if(user_id != '', user_id, anonymous_id)"
"""The id an event was sent with: the user id, or the anonymous id of a visitor not yet identified."""

# Every top-level property: key -> text (a JSON string as its decoded value, any other value
# as its JSON text). Filters and breakdowns by property read this map, not the JSON per row.
PROPERTY_VALUES = (
    "CAST(arrayMap(kv -> (kv.1, if(startsWith(kv.2, '\"'), JSONExtractString(kv.2), kv.2)),"
    " JSONExtractKeysAndValuesRaw(properties)), 'Map(String, String)')"
)
MATERIALIZED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("uid", f"String MATERIALIZED {USER}"),
    ("property_values", f"Map(String, String) MATERIALIZED {PROPERTY_VALUES}"),
)

SORTING_KEY = "project_id, toDate(timestamp), event_type, event_id"
HOURLY_PRECISION = 14
"""uniqCombined's precision in the hourly projection: a 7-day range merges thousands of states,
about twice as fast at 14 (~0.8 % standard error) as at the default 17 (docs/benchmarks.md,
"Measurements behind design choices")."""

# Aggregates a query must spell exactly like this for ClickHouse to answer from a projection.
SESSIONS = "uniqCombined(nullIf(session_id, ''))"
HOURLY_USERS = f"uniqCombined({HOURLY_PRECISION})(uid)"
PROJECTIONS: tuple[tuple[str, str], ...] = (
    ("by_id", "SELECT event_id, timestamp ORDER BY project_id, event_id"),
    (
        "daily",
        "SELECT project_id, is_bot, toDate(timestamp), count(), uniqCombined(uid), "
        f"{SESSIONS}, min(timestamp), max(timestamp) GROUP BY project_id, is_bot, toDate(timestamp)",
    ),
    (
        "hourly",
        f"SELECT project_id, is_bot, toStartOfHour(timestamp), event_type, channel, count(), {HOURLY_USERS} "
        "GROUP BY project_id, is_bot, toStartOfHour(timestamp), event_type, channel",
    ),
)
BLOOM_FILTER_COLUMNS = ("user_id", "anonymous_id", "session_id")

# Projections stay exact when merges collapse copies and when rows are deleted: ClickHouse
# rebuilds the affected parts' projections instead of refusing (its default for both).
EVENTS_SETTINGS = (
    "deduplicate_merge_projection_mode = 'rebuild'",
    "lightweight_mutation_projection_mode = 'rebuild'",
)
SINGLE_NODE_SETTINGS = ("non_replicated_deduplication_window = 1000",)
"""Without it a single-node MergeTree ignores `insert_deduplication_token` (a retried insert)."""

IDENTITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("project_id", "LowCardinality(String) DEFAULT 'default'"),
    ("kind", "LowCardinality(String)"),  # 'user' | 'group'
    ("id", "String"),
    ("event_id", "String"),
    ("timestamp", "DateTime64(3, 'UTC')"),
    ("member", "String"),  # group calls: the user who made the call
    ("traits", "String"),  # the JSON object text
)
ALIAS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("project_id", "LowCardinality(String) DEFAULT 'default'"),
    ("previous_id", "String"),
    ("user_id", "String"),
    ("event_id", "String"),
    ("timestamp", "DateTime64(3, 'UTC')"),
)
ERASURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("project_id", "LowCardinality(String)"),
    ("id", "String"),
    ("erased_at", "DateTime64(3, 'UTC')"),
)
"""Tombstones: ids (user or anonymous) whose events are erased, also those still in flight."""

# table, columns, engine version column, sorting key, sharding key. `identities` keeps one row
# per identify/group call (a replayed call collapses); `aliases` links an id to the user it became
# (the latest link wins at read: argMax); `erasures` is read by the worker before each insert.
_SMALL_TABLES = (
    (IDENTITIES_TABLE, IDENTITY_COLUMNS, "", "(project_id, kind, id, event_id)", "cityHash64(id)"),
    (ALIASES_TABLE, ALIAS_COLUMNS, "timestamp", "(project_id, previous_id, user_id)", "cityHash64(previous_id)"),
    (ERASURES_TABLE, ERASURE_COLUMNS, "erased_at", "(project_id, id)", "cityHash64(id)"),
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLUSTER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def quote_identifier(name: str) -> str:
    """Backtick-quote a database/table name after checking it is a plain identifier.

    Identifiers cannot be query parameters, so they are validated instead: settings already
    restrict them, this is the last line of defence against SQL in a name.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a valid ClickHouse identifier: {name!r}")
    return f"`{name}`"


def on_cluster(cluster: str) -> str:
    if not cluster:
        return ""
    if not _CLUSTER.fullmatch(cluster):
        raise ValueError(f"not a valid ClickHouse cluster name: {cluster!r}")
    return f" ON CLUSTER `{cluster}`"


def data_table(table: str, cluster: str) -> str:
    """The table that holds the rows (a Distributed table has none: deletes and TTLs go to the local one)."""
    return f"{table}_local" if cluster else table


def _definitions(columns: tuple[tuple[str, str], ...], extra: list[str] = ()) -> str:  # type: ignore[assignment]
    return ",\n".join([f"    `{name}` {type_}" for name, type_ in columns] + [f"    {line}" for line in extra])


def _replicated(engine: str, table: str, version: str = "") -> str:
    # {shard}, {replica} come from each server's macros; {database} is expanded by ClickHouse.
    arguments = f"'/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}'" + (f", {version}" if version else "")
    return f"Replicated{engine}({arguments})"


def events_columns() -> tuple[tuple[str, str], ...]:
    return (*COLUMNS, BATCH_COLUMN, *MATERIALIZED_COLUMNS)


def events_table_statement(database: str, cluster: str = "", *, table: str = "", projections: bool = True) -> str:
    """CREATE TABLE of the events (`table`: another name, for the migration's copy; without
    `projections`: what bench/worker.py measures the projections' write cost against)."""
    db = quote_identifier(database)
    name = table or data_table(EVENTS_TABLE, cluster)
    extra = [f"INDEX idx_{column} {column} TYPE bloom_filter GRANULARITY 1" for column in BLOOM_FILTER_COLUMNS]
    extra += [f"PROJECTION {projection} ({select})" for projection, select in PROJECTIONS if projections]
    engine = _replicated("ReplacingMergeTree", name) if cluster else "ReplacingMergeTree"
    settings = EVENTS_SETTINGS if cluster else (*EVENTS_SETTINGS, *SINGLE_NODE_SETTINGS)
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{quote_identifier(name)}{on_cluster(cluster)}\n"
        f"(\n{_definitions(events_columns(), extra)}\n)\n"
        f"ENGINE = {engine}\nPARTITION BY toYYYYMM(timestamp)\nORDER BY ({SORTING_KEY})\n"
        f"SETTINGS {', '.join(settings)}"
    )


def schema_statements(database: str, cluster: str = "") -> list[str]:
    """The DDL that creates StreamTrack's tables in `database`, in order; each is idempotent."""
    db = quote_identifier(database)
    here = on_cluster(cluster)
    statements = [f"CREATE DATABASE IF NOT EXISTS {db}{here}", events_table_statement(database, cluster)]
    if cluster:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {db}.`{EVENTS_TABLE}`{here} AS {db}.`{LOCAL_TABLE}`\n"
            f"ENGINE = Distributed('{cluster}', '{database}', '{LOCAL_TABLE}', cityHash64(project_id, {USER}))"
        )
    for table, columns, version, order_by, shard_by in _SMALL_TABLES:
        engine = _replicated("ReplacingMergeTree", f"{table}_local", version) if cluster else f"ReplacingMergeTree({version})"
        settings = "" if cluster else f"\nSETTINGS {SINGLE_NODE_SETTINGS[0]}"
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{quote_identifier(data_table(table, cluster))}{here}\n"
            f"(\n{_definitions(columns)}\n)\nENGINE = {engine}\nORDER BY {order_by}{settings}"
        )
        if cluster:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {db}.`{table}`{here} AS {db}.`{table}_local`\n"
                f"ENGINE = Distributed('{cluster}', '{database}', '{table}_local', {shard_by})"
            )
    # One copy on every node (the path has no {shard}), as the keys' tables.
    engine = f"ReplicatedMergeTree('/clickhouse/tables/all/{{database}}/{VERSION_TABLE}', '{{replica}}')" if cluster else "MergeTree"
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {db}.`{VERSION_TABLE}`{here}\n"
        "(\n    `version` UInt32,\n    `applied_at` DateTime('UTC') DEFAULT now()\n)\n"
        f"ENGINE = {engine}\nORDER BY version"
    )
    return statements


def drop_statements(database: str, cluster: str = "") -> list[str]:
    """Remove the database and everything in it (tests, clean-ups)."""
    return [f"DROP DATABASE IF EXISTS {quote_identifier(database)}{on_cluster(cluster)} SYNC"]
