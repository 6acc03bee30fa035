"""The store's DDL and SQL, checked without an engine: what the single-node engine cannot run
(the cluster form) and what must hold for any value (values travel only as parameters).

What the SQL answers is checked against the engine by the oracle tests
(tests/integration/test_oracle.py), not here.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamtrack.events import Event
from streamtrack.store import queries
from streamtrack.store.queries import ActivityFilter
from streamtrack.store.schema import COLUMNS, PROJECTIONS, SORTING_KEY, drop_statements, schema_statements

NASTY = "x' OR 1=1; DROP TABLE events; -- {user_id:String} `evil` \\ \t\n"


def test_columns_follow_the_stored_event_fields() -> None:
    stored = [name for name in Event.__struct_fields__ if name != "generated_id"]
    assert [name for name, _ in COLUMNS] == stored


def test_the_key_is_tenant_first_and_holds_no_exact_time() -> None:
    assert SORTING_KEY.split(", ") == ["project_id", "toDate(timestamp)", "event_type", "event_id"]
    events = schema_statements("db")[1]
    assert "ENGINE = ReplacingMergeTree\n" in events
    for name, select in PROJECTIONS:
        assert f"PROJECTION {name} ({select})" in events
    assert "deduplicate_merge_projection_mode = 'rebuild'" in events
    assert "lightweight_mutation_projection_mode = 'rebuild'" in events
    assert "non_replicated_deduplication_window = 1000" in events  # single node: the insert token works


def test_cluster_form_is_replicated_sharded_by_project_and_user_and_on_cluster() -> None:
    statements = schema_statements("analytics", "main-cluster")
    assert all(" ON CLUSTER `main-cluster`" in s for s in statements)
    local = next(s for s in statements if "`events_local`" in s and "CREATE TABLE" in s)
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')" in local
    assert "non_replicated_deduplication_window" not in local  # replicated tables deduplicate tokens anyway
    distributed = next(s for s in statements if "ENGINE = Distributed" in s and "`events`" in s)
    assert distributed.endswith(
        "Distributed('main-cluster', 'analytics', 'events_local', cityHash64(project_id, if(user_id != '', user_id, anonymous_id)))"
    )
    for table in ("identities", "aliases", "erasures"):
        assert any(f"`{table}_local`" in s and "ReplicatedReplacingMergeTree" in s for s in statements)
        assert any(f"`{table}` ON CLUSTER" in s and "Distributed(" in s for s in statements)
    version = next(s for s in statements if "`schema_version`" in s)
    assert "ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_version', '{replica}')" in version


def test_cluster_inserts_are_synchronous_and_dedup_reads_sequentially_consistent() -> None:
    single = queries.insert_settings("tok")
    assert single == {"async_insert": 0, "optimize_on_insert": 0, "insert_deduplication_token": "tok"}
    cluster = queries.insert_settings("tok", cluster=True)
    assert cluster["distributed_foreground_insert"] == 1  # the Distributed table's insert waits for the shards
    assert cluster["insert_quorum"] == "auto" and cluster["insert_quorum_parallel"] == 0
    assert cluster["insert_deduplication_token"] == "tok"
    assert queries.CLUSTER_DEDUP_READ_SETTINGS == {"select_sequential_consistency": 1}


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
    assert queries.stored_ids("db", a, [a, b], [str(ms)]).sql == queries.stored_ids("db", b, [b], ["x"]).sql


def test_values_stay_out_of_the_sql() -> None:
    for query in (
        queries.activities("db", ActivityFilter(user_id=NASTY, end_ms=5), after=(7, NASTY), limit=30),
        queries.stored_ids("db", NASTY, [NASTY], None),
    ):
        assert "DROP" not in query.sql and "OR 1=1" not in query.sql
        assert NASTY in query.params.values() or [NASTY] in query.params.values()


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


def test_insert_statement_names_columns_and_settings() -> None:
    sql = queries.insert_statement("db", "events", ["event_id", "tags"], queries.insert_settings("0123abcdef"))
    assert sql == (
        "INSERT INTO `db`.`events` (`event_id`, `tags`) SETTINGS async_insert = 0, optimize_on_insert = 0, "
        "insert_deduplication_token = '0123abcdef'"
    )


@pytest.mark.parametrize("token", ["", "a'b", "x' SETTINGS max_threads=1 --", "a b", "é", "a\\b", "x" * 129])
def test_unsafe_dedup_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="dedup token must match"):
        queries.insert_settings(token)
