"""The DDL and SQL of the hourly rollup, as text (what the engine does: tests/integration/test_hourly_rollup.py).

The cluster form cannot run here (no ClickHouse server): its statements are checked for the
shape the daily rollup's are (local replicated table, Distributed table, the view reading
each shard's `events_local`).
"""

from __future__ import annotations

import pytest

from streamtrack.store import rollups
from streamtrack.store.schema import hourly_statements


def test_single_node_hourly_rollup() -> None:
    table, view = hourly_statements("analytics")
    assert table.startswith("CREATE TABLE IF NOT EXISTS `analytics`.`events_hourly`\n(")
    assert (
        "ENGINE = AggregatingMergeTree\nPARTITION BY toYYYYMM(hour)\nORDER BY (project_id, hour, event_type, channel)\n"
        in table
    )
    assert "`users` AggregateFunction(uniqCombined(14), String)" in table
    assert table.endswith("SETTINGS non_replicated_deduplication_window = 1000")
    assert view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS `analytics`.`events_hourly_mv` TO `analytics`.`events_hourly`\n"
    )
    assert "FROM `analytics`.`events`\nWHERE is_bot = 0\nGROUP BY project_id, hour, event_type, channel" in view


def test_cluster_hourly_rollup() -> None:
    local, distributed, view = hourly_statements("analytics", "main-cluster")
    assert all(" ON CLUSTER `main-cluster`" in s for s in (local, distributed, view))
    assert "ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/events_hourly_local'" in local
    assert "ENGINE = Distributed('main-cluster', 'analytics', 'events_hourly_local', rand())" in distributed
    assert " TO `analytics`.`events_hourly_local`\nAS SELECT " in view and "FROM `analytics`.`events_local`" in view


def test_hourly_reads_are_scoped_and_parameterised() -> None:
    query = rollups.hourly_counts(
        "db", start_ms=0, end_ms=10, equals={"channel": "x'; DROP"}, by="event_type",
        step_ms=1, origin_ms=0, extra_rows=[(0, "click", 2)], top=["click"],
    )
    # the rollup part by the project parameter, the raw part by the analytics' project rows
    assert query.sql.count("project_id = {scope_project:String}") == 2
    assert query.sql.count("is_bot = 0") == 1
    assert "DROP" not in query.sql and query.params["eq_0"] == "x'; DROP"
    assert (query.params["extra_buckets"], query.params["extra_values"], query.params["extra_counts"]) == (
        ["0"], ["click"], ["2"]
    )
    copy_rows = rollups.copy_rows("db", start_ms=0, end_ms=1, equals={}, by=None, ids=["a"])
    assert "project_id = {scope_project:String} AND is_bot = 0" in copy_rows.sql
    assert "project_id = {scope_project:String}" in rollups.has_links("db").sql
    for equals, by in (({"url": "u"}, None), ({}, "url`, 1")):
        with pytest.raises(ValueError, match="hourly rollup keeps"):
            rollups.hourly_counts(
                "db", start_ms=0, end_ms=1, equals=equals, by=by, step_ms=1, origin_ms=0, extra_rows=[]
            )
    with pytest.raises(ValueError, match="identifier"):
        hourly_statements("db`; DROP")
