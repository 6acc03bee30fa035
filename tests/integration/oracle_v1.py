"""A version-1 database, as the release before storage v2 made it, for the migration's oracle test.

The DDL is version 1's (`git show 064acb3:streamtrack/store/schema.py`), single node, written
out here rather than imported: it is history, and must not follow later changes of `schema`.
Version 1 stored copies of an event as rows of their own and listed the ids with more than
one (non-bot) row in `event_copies`, fed after each insert; `fill_registry` does what its
worker and its backfill did.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamtrack.events import Event
from streamtrack.store import EventStore
from streamtrack.store.codec import events_to_arrow

COLUMNS = (
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
    ("properties", "String"),
    ("ip", "String"),
    ("user_agent", "String"),
    ("project_id", "LowCardinality(String) DEFAULT 'default'"),
    ("is_bot", "UInt8"),
)
PROPERTY_VALUES = (
    "CAST(arrayMap(kv -> (kv.1, if(startsWith(kv.2, '\"'), JSONExtractString(kv.2), kv.2)),"
    " JSONExtractKeysAndValuesRaw(properties)), 'Map(String, String)')"
)
USER = "if(user_id != '', user_id, anonymous_id)"
TABLES = ("event_ids", "event_ids_mv", "event_copies", "event_copy_rows", "events_daily", "events_daily_mv",
          "events_hourly", "events_hourly_mv")
"""Version 1's tables that version 2 no longer has."""


def _columns(columns: Sequence[tuple[str, str]]) -> str:
    return ",\n".join(f"    `{name}` {type_}" for name, type_ in columns)


def statements(database: str) -> list[str]:
    db = f"`{database}`"
    events = [*COLUMNS, ("property_values", f"Map(String, String) MATERIALIZED {PROPERTY_VALUES}")]
    indexes = ",\n".join(f"    INDEX idx_{c} {c} TYPE bloom_filter GRANULARITY 1" for c in ("user_id", "session_id", "event_id"))
    window = "SETTINGS non_replicated_deduplication_window = 1000"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE {db}.`events`\n(\n{_columns(events)},\n{indexes}\n)\nENGINE = ReplacingMergeTree\n"
        "PARTITION BY toYYYYMM(timestamp)\nORDER BY (toDate(timestamp), event_type, timestamp, event_id, project_id)\n" + window,
        f"CREATE TABLE {db}.`identities` (`project_id` LowCardinality(String) DEFAULT 'default', `kind` LowCardinality(String),"
        " `id` String, `event_id` String, `timestamp` DateTime64(3, 'UTC'), `member` String, `traits` String)"
        f" ENGINE = ReplacingMergeTree() ORDER BY (project_id, kind, id, event_id) {window}",
        f"CREATE TABLE {db}.`aliases` (`project_id` LowCardinality(String) DEFAULT 'default', `previous_id` String,"
        " `user_id` String, `event_id` String, `timestamp` DateTime64(3, 'UTC'))"
        f" ENGINE = ReplacingMergeTree(timestamp) ORDER BY (project_id, previous_id, user_id) {window}",
        f"CREATE TABLE {db}.`event_ids` (`event_id` String, `timestamp` DateTime64(3, 'UTC'),"
        " `project_id` LowCardinality(String), `is_bot` UInt8)"
        " ENGINE = MergeTree ORDER BY event_id SETTINGS index_granularity = 256, non_replicated_deduplication_window = 1000",
        f"CREATE TABLE {db}.`event_copies` (`project_id` LowCardinality(String), `event_id` String,"
        " `first` DateTime64(3, 'UTC'), `last` DateTime64(3, 'UTC'), `rows` UInt64, `times` Array(DateTime64(3, 'UTC')))"
        f" ENGINE = ReplacingMergeTree(rows) ORDER BY (project_id, event_id) {window}",
        f"CREATE TABLE {db}.`event_copy_rows`\n(\n{_columns(events)}\n)\nENGINE = MergeTree ORDER BY (project_id, event_id) {window}",
        f"CREATE MATERIALIZED VIEW {db}.`event_ids_mv` TO {db}.`event_ids`"
        f" AS SELECT event_id, timestamp, project_id, is_bot FROM {db}.`events`",
        f"CREATE TABLE {db}.`events_daily` (`project_id` LowCardinality(String), `day` Date,"
        " `events` SimpleAggregateFunction(sum, UInt64), `users` AggregateFunction(uniqCombined, String),"
        " `sessions` AggregateFunction(uniqCombined, String), `first` SimpleAggregateFunction(min, DateTime64(3, 'UTC')),"
        " `last` SimpleAggregateFunction(max, DateTime64(3, 'UTC')))"
        f" ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (project_id, day) {window}",
        f"CREATE MATERIALIZED VIEW {db}.`events_daily_mv` TO {db}.`events_daily` AS SELECT project_id,"
        f" toDate(timestamp) AS day, count() AS events, uniqCombinedState({USER}) AS users,"
        " uniqCombinedStateIf(session_id, session_id != '') AS sessions, min(timestamp) AS first, max(timestamp) AS last"
        f" FROM {db}.`events` WHERE is_bot = 0 GROUP BY project_id, day",
        f"CREATE TABLE {db}.`events_hourly` (`project_id` LowCardinality(String), `hour` DateTime('UTC'),"
        " `event_type` LowCardinality(String), `channel` LowCardinality(String), `events` SimpleAggregateFunction(sum, UInt64),"
        " `users` AggregateFunction(uniqCombined(14), String)) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(hour)"
        f" ORDER BY (project_id, hour, event_type, channel) {window}",
        f"CREATE MATERIALIZED VIEW {db}.`events_hourly_mv` TO {db}.`events_hourly` AS SELECT project_id,"
        f" toStartOfHour(timestamp) AS hour, event_type, channel, count() AS events, uniqCombinedState(14)({USER}) AS users"
        f" FROM {db}.`events` WHERE is_bot = 0 GROUP BY project_id, hour, event_type, channel",
    ]


def create(store: EventStore) -> None:
    for statement in statements(store.database):
        store.backend.command(statement)


def insert(store: EventStore, rows: Sequence[Event]) -> None:
    """Rows into version 1's events table (which has no `insert_batch`), one insert."""
    table = events_to_arrow(rows).drop_columns(["insert_batch"])
    store.backend.insert_events(store.database, "events", table, {"async_insert": 0})


def fill_registry(store: EventStore) -> None:
    """What version 1 recorded after its inserts: the ids stored more than once among the rows
    the analytics read (bots left out), and those ids' rows."""
    db = f"`{store.database}`"
    names = ", ".join(f"`{name}`" for name, _ in COLUMNS)
    store.backend.command(
        f"INSERT INTO {db}.`event_copies` SELECT project_id, event_id, minIf(timestamp, is_bot = 0),"
        " maxIf(timestamp, is_bot = 0), countIf(is_bot = 0), groupArrayIf(timestamp, is_bot = 0)"
        f" FROM {db}.`event_ids` GROUP BY project_id, event_id HAVING countIf(is_bot = 0) > 1"
    )
    store.backend.command(
        f"INSERT INTO {db}.`event_copy_rows` ({names}) SELECT {names} FROM {db}.`events`"
        f" WHERE event_id IN (SELECT event_id FROM {db}.`event_copies`)"
    )


def link(store: EventStore, project: str, previous_id: str, user_id: str, timestamp: int) -> None:
    store.backend.command(
        f"INSERT INTO `{store.database}`.`aliases` (project_id, previous_id, user_id, event_id, timestamp) VALUES"
        " ({p:String}, {prev:String}, {user:String}, '', fromUnixTimestamp64Milli({ts:Int64}, 'UTC'))",
        {"p": project, "prev": previous_id, "user": user_id, "ts": timestamp},
    )
