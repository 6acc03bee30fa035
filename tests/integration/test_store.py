"""EventStore against the real embedded ClickHouse engine (chdb), and a server when one is given.

Each test that counts rows gets a database of its own (`clean_store`); the others share
the module's `store` and use their own user/session ids. Where a test depends on
duplicates being physically present, merges are stopped for its table, so the result
cannot depend on when ClickHouse happens to merge.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import clickhouse_connect
import pytest

from streamtrack.config import load_settings
from streamtrack.errors import ConfigError, StoreUnavailable
from streamtrack.events import Event
from streamtrack.store import EventStore, StoreStats, open_store
from streamtrack.store.schema import events_columns, schema_statements
from streamtrack.store.server import ServerBackend, connect, parse_url

T0 = 1_750_000_000_000  # 2025-06-15T15:06:40Z

NASTY_VALUES = [
    "' OR '1'='1",
    "x'; DROP TABLE events; --",
    "\\' OR 1=1 --",
    "{user_id:String}",
    "`; DROP DATABASE default; --",
    "a\tb\nc\\",
    "\\N",
    "",
]


def make_event(n: int, **fields: object) -> Event:
    values: dict[str, object] = {
        "event_id": f"evt-{n:05d}",
        "event_type": "page_view",
        "timestamp": T0 + n * 1000,
        "received_at": T0 + n * 1000 + 250,
        "user_id": "user-1",
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


def newest_first(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.timestamp, e.event_id), reverse=True)


def stop_merges(store: EventStore) -> None:
    """Keep duplicate rows physically apart, so counts do not depend on merge timing."""
    store.backend.command(f"SYSTEM STOP MERGES `{store.database}`.`events`")


def walk(store: EventStore, page_size: int, **filters: object) -> Iterator[list[Event]]:
    after = None
    while True:
        page = store.activities(after=after, limit=page_size, **filters)  # type: ignore[arg-type]
        if not page:
            return
        yield page
        after = (page[-1].timestamp, page[-1].event_id)


# --- schema ----------------------------------------------------------------------------


def test_migrate_twice_is_harmless(clean_store: EventStore) -> None:
    events = [make_event(i) for i in range(3)]
    clean_store.insert(events)
    clean_store.migrate()
    clean_store.migrate()
    assert clean_store.stats() == StoreStats(rows=3, distinct_events=3)
    columns = clean_store.backend.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = 'events' ORDER BY position",
        {"db": clean_store.database},
    )
    declared = list(events_columns())
    assert columns == [(name, type_.split(" DEFAULT ")[0].split(" MATERIALIZED ")[0]) for name, type_ in declared]  # type only
    [(engine, sorting_key)] = clean_store.backend.query(
        "SELECT engine, sorting_key FROM system.tables WHERE database = {db:String} AND name = 'events'",
        {"db": clean_store.database},
    )
    assert (engine, sorting_key) == (
        "ReplacingMergeTree",
        "project_id, toDate(timestamp), event_type, event_id",
    )


def test_merges_never_collapse_two_projects_events(clean_store: EventStore) -> None:
    """Same id, type and time in two projects (a client's own ids, or a write key aimed at another
    project's events): two events, and both stay when merges collapse equal sorting keys."""
    twins = [
        Event(event_id="e-1", event_type="click", timestamp=1_769_860_800_000, received_at=1_769_860_800_000,
              user_id="u", project_id=project)
        for project in ("shop", "blog")
    ]
    clean_store.insert(twins)
    clean_store.insert(twins[:1])  # and a true copy within one project, which merges do collapse
    clean_store.backend.command(f"OPTIMIZE TABLE `{clean_store.database}`.events FINAL")
    rows = clean_store.backend.query(f"SELECT project_id FROM `{clean_store.database}`.events ORDER BY project_id")
    assert rows == [("blog",), ("shop",)]


def test_cluster_schema_is_valid_clickhouse_sql(store: EventStore) -> None:
    """The cluster form cannot run here (no cluster), but ClickHouse's own parser accepts it."""
    for statement in schema_statements("analytics", "prod"):
        [(formatted,)] = store.backend.query("SELECT formatQuery({sql:String})", {"sql": statement})
        assert "ON CLUSTER prod" in formatted


# --- round trip ------------------------------------------------------------------------


def test_round_trip_keeps_every_field(clean_store: EventStore) -> None:
    events = [
        Event(
            event_id="0c8f7a52-6a4b-4ad5-a7b4-7b61f8c1d3a1",
            event_type="purchase",
            timestamp=T0 + 123,
            received_at=T0 + 999,
            user_id="usér-ü-😀",
            anonymous_id="anon-42",
            session_id="sess-1",
            url="https://example.com/p?q=1&r=ü#frag",
            referrer="https://google.com/search?q=%E2%9C%93",
            channel="web",
            campaign_id="spring-sale",
            tags=["vip", "", "日本語", "with,comma", "quote'd"],
            properties={
                "plan": "pro",
                "price": 19.99,
                "count": 3,
                "big": 2**62,
                "negative": -7,
                "ok": True,
                "missing": None,
                "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1, "tags": ["x"]}],
                "nested": {"deeper": {"deepest": ["é", 1, 2.5, False]}},
                "ключ": "значение",
                "": "empty key",
            },
            ip="2001:db8::1",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) 'quoted' \"double\" \\ backslash",
        ),
        Event(event_id="minimal", event_type="ping", timestamp=T0, received_at=T0),
        Event(event_id="tabs", event_type="t", timestamp=T0 - 1, received_at=T0, user_id="a\tb\nc\\d\r\0e"),
    ]
    assert clean_store.insert(events) == 3
    assert clean_store.activities(limit=10) == newest_first(events)
    assert clean_store.activities(user_id="a\tb\nc\\d\r\0e", limit=10) == [events[2]]


def test_insert_of_nothing_stores_nothing(clean_store: EventStore) -> None:
    assert clean_store.insert([]) == 0
    assert clean_store.insert([], dedup_token="abc") == 0
    assert clean_store.stats() == StoreStats(rows=0, distinct_events=0)
    assert clean_store.activities(limit=10) == []


# --- filters and time range ------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(store: EventStore) -> list[Event]:
    """24 events: 3 users x 2 types x 2 sessions x 2 times, one second apart."""
    events = []
    n = 0
    for user in ("alice", "bob", "carol"):
        for event_type in ("click", "view"):
            for session in ("s1", "s2"):
                for _ in range(2):
                    events.append(
                        make_event(
                            n,
                            event_id=f"mixed-{n:03d}",
                            user_id=user,
                            event_type=event_type,
                            session_id=f"{user}-{session}",
                        )
                    )
                    n += 1
    store.insert(events)
    return events


@pytest.mark.parametrize(
    ("filters", "keep", "count"),
    [
        ({"user_id": "bob"}, lambda e: e.user_id == "bob", 8),
        ({"event_type": "click"}, lambda e: e.event_type == "click", 12),
        ({"session_id": "carol-s2"}, lambda e: e.session_id == "carol-s2", 4),
        (
            {"user_id": "alice", "event_type": "view"},
            lambda e: e.user_id == "alice" and e.event_type == "view",
            4,
        ),
        ({"user_id": "alice", "session_id": "bob-s1"}, lambda e: False, 0),
        ({"user_id": "nobody"}, lambda e: False, 0),
    ],
    ids=["user", "type", "session", "user+type", "user+other-session", "unknown-user"],
)
def test_filters(
    store: EventStore, mixed: list[Event], filters: dict[str, str], keep: Callable[[Event], bool], count: int
) -> None:
    result = store.activities(start_ms=T0, end_ms=T0 + 24_000, limit=100, **filters)  # type: ignore[arg-type]
    assert len(result) == count
    assert result == newest_first([e for e in mixed if keep(e)])


def test_time_range_start_inclusive_end_exclusive(store: EventStore, mixed: list[Event]) -> None:
    start, end = mixed[5].timestamp, mixed[9].timestamp  # exact event times on both edges
    result = store.activities(start_ms=start, end_ms=end, limit=100)
    assert [e.event_id for e in result] == ["mixed-008", "mixed-007", "mixed-006", "mixed-005"]
    assert store.activities(start_ms=start, end_ms=start, limit=100) == []
    assert [e.event_id for e in store.activities(start_ms=start, end_ms=start + 1, limit=100)] == [
        "mixed-005"
    ]
    assert [e.event_id for e in store.activities(start_ms=mixed[-1].timestamp, limit=100)] == ["mixed-023"]
    assert [e.event_id for e in store.activities(end_ms=mixed[0].timestamp + 1, start_ms=T0, limit=100)] == [
        "mixed-000"
    ]


def test_limit(store: EventStore, mixed: list[Event]) -> None:
    result = store.activities(start_ms=T0, end_ms=T0 + 24_000, limit=3)
    assert [e.event_id for e in result] == ["mixed-023", "mixed-022", "mixed-021"]


# --- pagination ------------------------------------------------------------------------


def test_pagination_walks_every_event_once_in_order_with_equal_timestamps(clean_store: EventStore) -> None:
    same = [make_event(i, event_id=f"same-{i:03d}", timestamp=T0 + 5000) for i in range(40)]
    before = [make_event(i, event_id=f"before-{i:03d}", timestamp=T0 + i) for i in range(15)]
    after = [make_event(i, event_id=f"after-{i:03d}", timestamp=T0 + 10_000 + i) for i in range(15)]
    clean_store.insert(same + before + after)

    pages = list(walk(clean_store, page_size=7))
    seen = [e for page in pages for e in page]
    assert [len(p) for p in pages] == [7] * 10
    assert seen == newest_first(same + before + after)
    assert len({e.event_id for e in seen}) == 70
    assert [e.event_id for e in seen[15:18]] == ["same-039", "same-038", "same-037"]


def test_pagination_is_stable_when_newer_events_arrive(clean_store: EventStore) -> None:
    original = [make_event(i, event_id=f"orig-{i:03d}") for i in range(20)]
    clean_store.insert(original)
    first = clean_store.activities(limit=8)
    clean_store.insert([make_event(100 + i, event_id=f"new-{i:03d}") for i in range(5)])  # newer than all
    clean_store.insert([make_event(i, event_id=f"orig-{i:03d}z") for i in (3, 10)])  # same times, later ids
    cursor = (first[-1].timestamp, first[-1].event_id)
    rest = [e for page in walk_from(clean_store, cursor, 5) for e in page]
    walked = first + rest
    assert [e.event_id for e in first] == [f"orig-{i:03d}" for i in range(19, 11, -1)]
    assert [e.event_id for e in rest] == [
        "orig-011",
        "orig-010z",
        "orig-010",
        *(f"orig-{i:03d}" for i in range(9, 3, -1)),
        "orig-003z",
        "orig-003",
        "orig-002",
        "orig-001",
        "orig-000",
    ]
    assert len({e.event_id for e in walked}) == len(walked) == 22


def walk_from(store: EventStore, after: tuple[int, str], page_size: int) -> Iterator[list[Event]]:
    while True:
        page = store.activities(after=after, limit=page_size)
        if not page:
            return
        yield page
        after = (page[-1].timestamp, page[-1].event_id)


# --- deduplication ---------------------------------------------------------------------


def test_same_batch_same_token_is_stored_once(clean_store: EventStore) -> None:
    stop_merges(clean_store)
    # Three months: three partitions, so the insert writes three parts under one token.
    batch = [make_event(i, timestamp=T0 + i * 86_400_000 * 20) for i in range(6)]
    token = secrets.token_hex(16)
    assert clean_store.insert(batch, dedup_token=token) == 6
    assert clean_store.insert(batch, dedup_token=token) == 6
    assert clean_store.insert(list(batch), dedup_token=token) == 6
    assert clean_store.stats() == StoreStats(rows=6, distinct_events=6)
    assert clean_store.activities(limit=100) == newest_first(batch)
    clean_store.insert(batch, dedup_token=secrets.token_hex(16))  # a different token is a different insert
    assert clean_store.stats() == StoreStats(rows=12, distinct_events=6)


def test_bad_dedup_token_is_refused_before_inserting(clean_store: EventStore) -> None:
    with pytest.raises(ValueError, match="dedup token must match"):
        clean_store.insert([make_event(1)], dedup_token="x'; DROP TABLE events; --")
    assert clean_store.stats() == StoreStats(rows=0, distinct_events=0)


# --- injection -------------------------------------------------------------------------


@pytest.mark.parametrize("value", NASTY_VALUES)
@pytest.mark.parametrize("field", ["user_id", "event_type", "session_id"])
def test_sql_injection_in_filters_is_just_a_value(
    store: EventStore, mixed: list[Event], field: str, value: str
) -> None:
    before = store.stats()
    assert store.activities(limit=100, **{field: value}) == []  # type: ignore[arg-type]
    assert store.activities(after=(T0 + 30_000, value), limit=100) == newest_first(mixed)
    assert store.stats() == before == StoreStats(rows=24, distinct_events=24)


def test_nasty_values_are_stored_and_matched_exactly(clean_store: EventStore) -> None:
    events = [
        make_event(i, event_id=f"nasty-{i}", user_id=v, session_id=v, event_type=v or "empty")
        for i, v in enumerate(NASTY_VALUES)
    ]
    clean_store.insert(events)
    for event, value in zip(events, NASTY_VALUES, strict=True):
        assert clean_store.activities(user_id=value, limit=10) == [event]
        assert clean_store.activities(session_id=value, limit=10) == [event]
    assert clean_store.activities(user_id="a\\tb\\nc\\\\", limit=10) == []  # escaped text is another value
    assert clean_store.stats() == StoreStats(rows=8, distinct_events=8)


# --- errors, engine sharing, threads ---------------------------------------------------


def test_availability_errors_become_store_unavailable_and_sql_errors_propagate(store: EventStore) -> None:
    with pytest.raises(StoreUnavailable, match="MEMORY_LIMIT_EXCEEDED") as unavailable:
        store.backend.query(
            "SELECT groupArray(number) FROM numbers(1000000) SETTINGS max_memory_usage = 100000"
        )
    assert unavailable.value.retry_after == 1
    with pytest.raises(RuntimeError, match="SYNTAX_ERROR") as bug:
        store.backend.query("SELEC 1")
    assert not isinstance(bug.value, StoreUnavailable)
    with pytest.raises(RuntimeError, match="UNKNOWN_TABLE"):
        store.backend.query(f"SELECT * FROM `{store.database}`.`no_such_table`")
    # A query that fails after producing output must not leak it into the next result.
    with pytest.raises(RuntimeError, match="FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"):
        store.backend.query("SELECT throwIf(number = 100000) FROM numbers(200000)")
    assert store.backend.query("SELECT number FROM numbers(3)") == [(0,), (1,), (2,)]


def test_one_data_folder_per_process(engine_path: Path, tmp_path: Path) -> None:
    other = load_settings(env={}, data_dir=str(tmp_path / "other"))
    with pytest.raises(ConfigError, match="already runs on .* in this process; chdb allows one data folder"):
        open_store(other)
    same = open_store(load_settings(env={}, data_dir=str(engine_path.parent), clickhouse_database="default"))
    same.ping()
    same.close()
    same.close()


def test_closed_store_is_unavailable(store_settings) -> None:  # type: ignore[no-untyped-def]
    closed = open_store(store_settings)
    closed.close()
    with pytest.raises(StoreUnavailable, match="store is closed"):
        closed.ping()


def test_cluster_setting_needs_a_server(engine_path: Path) -> None:
    settings = load_settings(env={}, data_dir=str(engine_path.parent), clickhouse_cluster="prod")
    with pytest.raises(ConfigError, match="STREAMTRACK_CLICKHOUSE_CLUSTER needs a ClickHouse server"):
        open_store(settings)


def test_reads_and_inserts_from_many_threads(clean_store: EventStore) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                clean_store.activities(user_id="user-1", limit=50)
                clean_store.stats()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer(w: int) -> None:
        try:
            for b in range(10):
                clean_store.insert([make_event(i, event_id=f"w{w}-b{b}-{i}") for i in range(200)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert clean_store.stats().distinct_events == 4000


# --- server backend --------------------------------------------------------------------


def _round_trip(store: EventStore) -> None:
    store.migrate()
    store.migrate()
    events = [make_event(i, properties={"i": i, "nested": {"é": [i]}}, tags=["t", str(i)]) for i in range(12)]
    events.append(make_event(50, event_id="other", user_id="x'; DROP TABLE events; --", session_id="a\tb\\c"))
    token = secrets.token_hex(16)
    assert store.insert(events, dedup_token=token) == 13
    assert store.insert(events, dedup_token=token) == 13
    assert store.stats() == StoreStats(rows=13, distinct_events=13)
    assert store.activities(limit=100) == newest_first(events)
    assert store.activities(
        user_id="user-1", start_ms=events[2].timestamp, end_ms=events[5].timestamp, limit=100
    ) == [events[4], events[3], events[2]]
    assert store.activities(user_id="x'; DROP TABLE events; --", session_id="a\tb\\c", limit=5) == [
        events[-1]
    ]
    assert store.activities(after=(events[6].timestamp, events[6].event_id), limit=3) == [
        events[5],
        events[4],
        events[3],
    ]
    store.ping()


def test_server_backend_code_through_clickhouse_connect_chdb(engine_path: Path) -> None:
    """Runs ServerBackend (clickhouse-connect's query/command/insert_arrow, parameter binding,
    error mapping) for real, against the embedded engine that clickhouse-connect can also drive."""
    backend = ServerBackend(lambda: clickhouse_connect.get_client(interface="chdb", path=str(engine_path)))
    store = EventStore(backend, f"test_{secrets.token_hex(6)}")
    try:
        _round_trip(store)
        with pytest.raises(StoreUnavailable, match="MEMORY_LIMIT_EXCEEDED"):
            backend.query(
                "SELECT groupArray(number) FROM numbers(1000000) SETTINGS max_memory_usage = 100000"
            )
        with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="SYNTAX_ERROR"):
            backend.query("SELEC 1")
    finally:
        store.drop_database()
        store.close()
    with pytest.raises(StoreUnavailable, match="store is closed"):
        store.ping()


def test_unreachable_server_is_unavailable() -> None:
    backend = ServerBackend(lambda: connect(parse_url("http://default:secret@127.0.0.1:9/")))
    with pytest.raises(StoreUnavailable, match="ClickHouse server unavailable"):
        EventStore(backend, "streamtrack").ping()


def test_parse_url() -> None:
    address = parse_url("https://ingest%40corp:p%3Ass@ch.example.com/analytics")
    assert (
        address.host,
        address.port,
        address.username,
        address.password,
        address.secure,
        address.database,
    ) == ("ch.example.com", 8443, "ingest@corp", "p:ss", True, "analytics")
    assert "p:ss" not in repr(address)
    plain = parse_url("http://clickhouse:8124")
    assert (plain.port, plain.username, plain.password, plain.secure, plain.database) == (
        8124,
        "default",
        "",
        False,
        "",
    )


@pytest.mark.clickhouse_server
@pytest.mark.skipif(
    not os.environ.get("CLICKHOUSE_URL"), reason="set CLICKHOUSE_URL to test against a ClickHouse server"
)
def test_server_round_trip() -> None:
    url = urlparse(os.environ["CLICKHOUSE_URL"])
    database = f"test_{secrets.token_hex(6)}"
    settings = load_settings(env={"CLICKHOUSE_URL": urlunparse(url._replace(path=f"/{database}"))})
    store = open_store(settings)
    assert store.database == database and store.backend.name == "server"
    try:
        _round_trip(store)
    finally:
        store.drop_database()
        store.close()
