"""SQL text and DDL of the store, checked without an engine.

The property that matters most: the SQL of a query depends only on which filters are
present, never on their values; the values travel only as parameters.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamtrack.events import Event
from streamtrack.store import queries
from streamtrack.store.queries import ActivityFilter
from streamtrack.store.schema import COLUMNS, drop_statements, schema_statements

NASTY = "x' OR 1=1; DROP TABLE events; -- {user_id:String} `evil` \\ \t\n"


def test_columns_follow_event_fields() -> None:
    assert [name for name, _ in COLUMNS] == list(Event.__struct_fields__)


def test_single_node_schema() -> None:
    statements = schema_statements("analytics", added=())  # the ALTERs of added columns: test_added_columns
    assert len(statements) == 2
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `analytics`"
    table = statements[1]
    assert table.startswith("CREATE TABLE IF NOT EXISTS `analytics`.`events`\n(")
    assert "ON CLUSTER" not in table
    assert "ENGINE = ReplacingMergeTree\n" in table
    assert "PARTITION BY toYYYYMM(timestamp)\n" in table
    assert "ORDER BY (toDate(timestamp), event_type, timestamp, event_id, project_id)\n" in table
    assert table.endswith("SETTINGS non_replicated_deduplication_window = 1000")
    for column in ("user_id", "session_id", "event_id"):
        assert f"INDEX idx_{column} {column} TYPE bloom_filter GRANULARITY 1" in table
    for name, type_ in COLUMNS:
        assert f"`{name}` {type_}," in table


def test_cluster_schema() -> None:
    statements = schema_statements("analytics", "main-cluster", added=())
    assert len(statements) == 3
    assert all(" ON CLUSTER `main-cluster`" in s for s in statements)
    database, local, distributed = statements
    assert database == "CREATE DATABASE IF NOT EXISTS `analytics` ON CLUSTER `main-cluster`"
    assert local.startswith(
        "CREATE TABLE IF NOT EXISTS `analytics`.`events_local` ON CLUSTER `main-cluster`\n("
    )
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')\n"
        in local
    )
    assert "ORDER BY (toDate(timestamp), event_type, timestamp, event_id, project_id)" in local
    assert "INDEX idx_user_id user_id TYPE bloom_filter" in local
    assert "non_replicated_deduplication_window" not in local  # replicated tables deduplicate anyway
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS `analytics`.`events` ON CLUSTER `main-cluster` AS `analytics`.`events_local`\n"
        "ENGINE = Distributed('main-cluster', 'analytics', 'events_local', cityHash64(event_id))"
    )


def test_added_columns_become_idempotent_alters_after_their_predecessor() -> None:
    single = schema_statements("db", added=["campaign_id"])
    assert single[2:] == [
        "ALTER TABLE `db`.`events` ADD COLUMN IF NOT EXISTS `campaign_id` String AFTER `channel`"
    ]
    cluster = schema_statements("db", "c1", added=["tags"])
    assert cluster[3:] == [
        "ALTER TABLE `db`.`events_local` ON CLUSTER `c1` ADD COLUMN IF NOT EXISTS `tags` Array(String) AFTER `campaign_id`",
        "ALTER TABLE `db`.`events` ON CLUSTER `c1` ADD COLUMN IF NOT EXISTS `tags` Array(String) AFTER `campaign_id`",
    ]
    with pytest.raises(ValueError, match="'nope' is not in COLUMNS"):
        schema_statements("db", added=["nope"])


@pytest.mark.parametrize("database", ["", "1abc", "a-b", "db`; DROP", "a b", "événements"])
def test_bad_database_names_are_refused(database: str) -> None:
    with pytest.raises(ValueError, match="not a valid ClickHouse identifier"):
        schema_statements(database)
    with pytest.raises(ValueError, match="not a valid ClickHouse identifier"):
        queries.activities(database, limit=1)


@pytest.mark.parametrize("cluster", ["c`; DROP", "a b", "x'y"])
def test_bad_cluster_names_are_refused(cluster: str) -> None:
    with pytest.raises(ValueError, match="not a valid ClickHouse cluster name"):
        schema_statements("db", cluster)


def test_drop_statements() -> None:
    assert drop_statements("db") == ["DROP DATABASE IF EXISTS `db` SYNC"]
    assert drop_statements("db", "c1") == ["DROP DATABASE IF EXISTS `db` ON CLUSTER `c1` SYNC"]


PAGE_TAIL = (
    "    GROUP BY event_id\n"
    "    ORDER BY min(timestamp) DESC, event_id DESC\n"
    "    LIMIT {limit:UInt32}\n"
    ")\n"
    "ORDER BY timestamp DESC, event_id DESC\n"
    "LIMIT 1 BY event_id"
)


def test_activities_without_filters() -> None:
    query = queries.activities("db", limit=50)
    assert query.params == {"limit": 50}
    assert query.sql == (
        f"SELECT {queries.SELECT_EVENT_COLUMNS}\n"
        "FROM `db`.`events`\n"
        "WHERE (event_id, timestamp) IN (\n"
        "    SELECT event_id, min(timestamp)\n"
        "    FROM `db`.`events`\n" + PAGE_TAIL
    )
    assert queries.SELECT_EVENT_COLUMNS.startswith(
        "`event_id`, `event_type`, toUnixTimestamp64Milli(`timestamp`), toUnixTimestamp64Milli(`received_at`),"
    )


ALL_FRAGMENTS = [
    "user_id = {user_id:String}",
    "event_type = {event_type:String}",
    "session_id = {session_id:String}",
    "timestamp >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')",
    "timestamp < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')",
    "timestamp <= fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC') AND "
    "(timestamp < fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC') OR event_id < {after_id:String})",
]


def test_activities_where_has_only_placeholders() -> None:
    query = queries.activities(
        "db",
        ActivityFilter(
            user_id=NASTY,
            event_type=NASTY + "type",
            session_id=NASTY + "session",
            start_ms=1_700_000_000_000,
            end_ms=1_800_000_000_000,
        ),
        after=(1_750_000_000_123, NASTY + "id"),
        limit=25,
    )
    # The same filters on the rows (outer query) and on the page of ids (inner query).
    assert query.sql == (
        f"SELECT {queries.SELECT_EVENT_COLUMNS}\n"
        "FROM `db`.`events`\n"
        "WHERE " + "\n  AND ".join(ALL_FRAGMENTS) + "\n"
        "  AND (event_id, timestamp) IN (\n"
        "    SELECT event_id, min(timestamp)\n"
        "    FROM `db`.`events`\n"
        "    WHERE " + "\n      AND ".join(ALL_FRAGMENTS) + "\n" + PAGE_TAIL
    )
    assert query.params == {
        "user_id": NASTY,
        "event_type": NASTY + "type",
        "session_id": NASTY + "session",
        "start_ms": 1_700_000_000_000,
        "end_ms": 1_800_000_000_000,
        "after_ms": 1_750_000_000_123,
        "after_id": NASTY + "id",
        "limit": 25,
    }
    for value in ("1700000000000", "1800000000000", "1750000000123", "OR 1=1", "DROP", "evil"):
        assert value not in query.sql


def test_only_present_filters_appear() -> None:
    query = queries.activities("db", ActivityFilter(session_id="", end_ms=5), limit=1)
    assert query.sql.count("session_id = {session_id:String}") == 2
    assert query.sql.count("timestamp < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')") == 2
    assert query.sql.count("{") == 5  # session_id and end_ms twice, limit once
    assert query.params == {"session_id": "", "end_ms": 5, "limit": 1}


@given(
    a=st.text(max_size=40),
    b=st.text(max_size=40),
    ms=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_sql_never_depends_on_values(a: str, b: str, ms: int) -> None:
    first = queries.activities(
        "db", ActivityFilter(user_id=a, event_type=a, session_id=a, start_ms=ms), after=(ms, a), limit=10
    )
    second = queries.activities(
        "db", ActivityFilter(user_id=b, event_type=b, session_id=b, start_ms=0), after=(0, b), limit=99
    )
    assert first.sql == second.sql
    assert first.params["user_id"] == a and first.params["after_id"] == a


@pytest.mark.parametrize("limit", [0, -1, queries.MAX_LIMIT + 1, True, 1.5, "10"])
def test_bad_limits_are_refused(limit: object) -> None:
    with pytest.raises(ValueError, match="limit must be an int"):
        queries.activities("db", limit=limit)  # type: ignore[arg-type]


def test_bad_filter_types_are_refused() -> None:
    with pytest.raises(TypeError, match="user_id must be a str, got int"):
        queries.activities("db", ActivityFilter(user_id=5), limit=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start_ms must be an int"):
        queries.activities("db", ActivityFilter(start_ms="1700000000000"), limit=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="end_ms is out of range"):
        queries.activities("db", ActivityFilter(end_ms=2**63), limit=1)


def test_stats_query() -> None:
    assert queries.stats("db") == ("SELECT count(), uniqExact(event_id) FROM `db`.`events`", {})


def test_insert_statement_names_columns_and_settings() -> None:
    sql = queries.insert_statement("db", "events", ["event_id", "tags"], "0123abcdef")
    assert sql == (
        "INSERT INTO `db`.`events` (`event_id`, `tags`) SETTINGS async_insert = 0, optimize_on_insert = 0, "
        "insert_deduplication_token = '0123abcdef'"
    )
    assert queries.insert_statement("db", "events", ["event_id"], None) == (
        "INSERT INTO `db`.`events` (`event_id`) SETTINGS async_insert = 0, optimize_on_insert = 0"
    )


@pytest.mark.parametrize("token", ["", "a'b", "x' SETTINGS max_threads=1 --", "a b", "é", "a\\b", "x" * 129])
def test_unsafe_dedup_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="dedup token must match"):
        queries.insert_statement("db", "events", ["event_id"], token)


def test_fast_page_queries_keep_values_out_of_sql() -> None:
    filters = ActivityFilter(user_id=NASTY, end_ms=5)
    candidates = queries.activity_candidates("db", filters, after=(7, NASTY), limit=30)
    assert "ORDER BY toDate(timestamp) DESC, timestamp DESC, event_id DESC" in candidates.sql
    assert candidates.params == {"limit": 30, "user_id": NASTY, "end_ms": 5, "after_ms": 7, "after_id": NASTY}
    rows = queries.events_by_id("db", filters, ["a", NASTY])
    assert "event_id IN {ids:Array(String)}" in rows.sql and "after" not in rows.sql
    assert rows.params == {"ids": ["a", NASTY], "user_id": NASTY, "end_ms": 5}
    for query in (candidates, rows):
        assert "DROP" not in query.sql and "OR 1=1" not in query.sql
