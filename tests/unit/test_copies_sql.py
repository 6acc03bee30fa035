"""The DDL and SQL of the copies registry and the daily rollup, as text (what the engine does: tests/integration/test_copies.py).

The cluster form cannot run here (no ClickHouse server): its statements are checked for
the shape the single-node ones are proven with — local replicated tables, Distributed
tables sharded by event id like `events`, the view reading each shard's `events_local`.
"""

from __future__ import annotations

import pytest

from streamtrack.store import copies, rollups
from streamtrack.store.schema import copies_statements, rollup_statements


def test_single_node_registry() -> None:
    ids, registry, rows, view = copies_statements("analytics")
    assert ids.startswith("CREATE TABLE IF NOT EXISTS `analytics`.`event_ids`\n(")
    assert "ENGINE = MergeTree\nORDER BY event_id\n" in ids
    # a replay dropped from `events` by its token must be dropped from the view's table too
    assert ids.endswith("SETTINGS index_granularity = 256, non_replicated_deduplication_window = 1000")
    assert "ENGINE = ReplacingMergeTree(rows)\nORDER BY (project_id, event_id)" in registry
    # the copies' rows: every column of `events`, property_values computed again at insert
    assert rows.startswith("CREATE TABLE IF NOT EXISTS `analytics`.`event_copy_rows`\n(")
    assert "`property_values` Map(String, String) MATERIALIZED" in rows and "`properties` String" in rows
    assert "ENGINE = MergeTree\nORDER BY (project_id, event_id)\n" in rows
    assert view == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS `analytics`.`event_ids_mv` TO `analytics`.`event_ids`\n"
        "AS SELECT event_id, timestamp, project_id, is_bot FROM `analytics`.`events`"
    )
    assert not any("ON CLUSTER" in s for s in (ids, registry, rows, view))


def test_cluster_registry() -> None:
    statements = copies_statements("analytics", "main-cluster")
    assert len(statements) == 7
    assert all(" ON CLUSTER `main-cluster`" in s for s in statements)
    ids_local, ids, copies_local, registry, rows_local, rows, view = statements
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/event_ids_local', '{replica}')\n"
        "ORDER BY event_id\nSETTINGS index_granularity = 256" in ids_local
    )
    assert "non_replicated_deduplication_window" not in ids_local
    assert ids == (
        "CREATE TABLE IF NOT EXISTS `analytics`.`event_ids` ON CLUSTER `main-cluster` AS `analytics`.`event_ids_local`\n"
        "ENGINE = Distributed('main-cluster', 'analytics', 'event_ids_local', cityHash64(event_id))"
    )
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/event_copies_local',"
        " '{replica}', rows)" in copies_local
    )
    assert "Distributed('main-cluster', 'analytics', 'event_copies_local', cityHash64(event_id))" in registry
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/event_copy_rows_local', '{replica}')" in rows_local
    assert "Distributed('main-cluster', 'analytics', 'event_copy_rows_local', cityHash64(event_id))" in rows
    assert view == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS `analytics`.`event_ids_mv` ON CLUSTER `main-cluster`"
        " TO `analytics`.`event_ids_local`\nAS SELECT event_id, timestamp, project_id, is_bot FROM `analytics`.`events_local`"
    )


def test_ids_and_times_travel_as_parameters() -> None:
    nasty = "x'; DROP TABLE events; --"
    assert copies.record("db", []) == []
    for query in [copies.copied("db", [nasty, nasty, "b"]), *copies.record("db", [nasty, nasty, "b"])]:
        assert "DROP" not in query.sql and query.params == {"ids": [nasty, "b"]}
    query = copies.candidate_ids("db", 5, 9, limit=3)
    assert query.params == {"start_ms": 5, "end_ms": 9, "limit": 3}
    assert " AND last >= " in query.sql and " AND first < " in query.sql
    # the caller's project only: the parameter the API's project view supplies
    assert "WHERE project_id = {scope_project:String} LIMIT" in copies.candidate_ids("db", None, None, limit=3).sql


def test_identifiers_are_checked() -> None:
    with pytest.raises(ValueError, match="identifier"):
        copies.copied("db`; DROP", ["a"])
    with pytest.raises(ValueError, match="identifier"):
        copies_statements("db`; DROP")


def test_single_node_rollup() -> None:
    table, view = rollup_statements("analytics")
    assert table.startswith("CREATE TABLE IF NOT EXISTS `analytics`.`events_daily`\n(")
    assert "ENGINE = AggregatingMergeTree\nPARTITION BY toYYYYMM(day)\nORDER BY (project_id, day)\n" in table
    assert "`users` AggregateFunction(uniqCombined, String)" in table
    assert table.endswith("SETTINGS non_replicated_deduplication_window = 1000")
    assert view.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS `analytics`.`events_daily_mv` TO `analytics`.`events_daily`\n")
    assert "FROM `analytics`.`events`\nWHERE is_bot = 0\nGROUP BY project_id, day" in view


def test_cluster_rollup() -> None:
    local, distributed, view = rollup_statements("analytics", "main-cluster")
    assert all(" ON CLUSTER `main-cluster`" in s for s in (local, distributed, view))
    assert "ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/events_daily_local'" in local
    assert "ENGINE = Distributed('main-cluster', 'analytics', 'events_daily_local', rand())" in distributed
    assert " TO `analytics`.`events_daily_local`\nAS SELECT " in view and "FROM `analytics`.`events_local`" in view


def test_rollup_reads_are_scoped_to_the_caller_s_project() -> None:
    for query in (
        rollups.totals("db"),
        rollups.copy_summary("db", recent_ms=1),
        rollups.tail("db", ["a"], since_ms=1, recent_ms=2),
        rollups.active_users("db", start_ms=0, end_ms=1, day_ms=0, week_ms=0),
        rollups.crossing_ids("db", start_ms=0, end_ms=1, bound=0),
    ):
        assert "project_id = {scope_project:String}" in query.sql
    assert "is_bot = 0" in rollups.tail("db", [], since_ms=None, recent_ms=0).sql
