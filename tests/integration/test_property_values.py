"""`property_values` (the key -> text map computed at insert) answers as parsing the JSON did.

The analytics used to read a property from the `properties` JSON text of every row
(JSONHas for "has the key", JSONExtractRaw/JSONExtractString for the value). They now read
the materialized map. Here both are computed on the same stored rows for awkward values
(nested objects and arrays, numbers, booleans, null, quotes and escapes, empty strings,
missing keys, empty properties) and must agree row by row and key by key; the endpoints'
answers are checked on the same rows; and a table made before the column gets it from
`migrate`, with the rows already stored written into it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from streamtrack.config import Settings, load_settings
from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore, open_store
from streamtrack.store import analytics as analytics_sql
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import Analytics
from streamtrack.store.schema import EVENTS_TABLE, materialize_statements, schema_statements
from streamtrack.store.scoped import project_store
from tests.fixtures.store import random_database

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = Filter(start_ms=T0, end_ms=T0 + 86_400_000)

PROPERTIES: list[dict[str, Any]] = [
    {
        "plan": "pro",
        "nested": {"a": [1, "two", {"b": None}], "c": {"d": True}},
        "n": 3,
        "price": 19.99,
        "big": 2**62,
        "negative": -7,
        "yes": True,
        "no": False,
        "nothing": None,
        "quote": 'say "hi" \\ there',
        "unicode": "é 日本語 😀\n\ttab",
        "empty": "",
        "list": [],
        "object": {},
        "number_text": "3",
    },
    {"plan": "free", "n": 3.0, "quote": "'single'", "nested": [{"x": 1}]},
    {"plan": "", "n": "3", "nothing": "null", "yes": "true"},
    {"other": 1},
    {},
]
KEYS = sorted({key for properties in PROPERTIES for key in properties} | {"missing", "", "a"})

# What the analytics computed before `property_values`, per row: (has the key, its text).
JSON_PATH = (
    "SELECT event_id, JSONHas(properties, {key:String}),"
    " if(startsWith(JSONExtractRaw(properties, {key:String}), '\"'),"
    " JSONExtractString(properties, {key:String}), JSONExtractRaw(properties, {key:String}))"
    " FROM {db:Identifier}.events ORDER BY event_id"
)
MAP_PATH = (
    "SELECT event_id, mapContains(property_values, {key:String}), property_values[{key:String}]"
    " FROM {db:Identifier}.events ORDER BY event_id"
)


def make_events() -> list[Event]:
    return [
        Event(
            event_id=f"p{i}",
            event_type="page_view",
            timestamp=T0 + i * 1000,
            received_at=T0 + i * 1000,
            user_id=f"u{i}",
            properties=properties,
        )
        for i, properties in enumerate(PROPERTIES)
    ]


def assert_map_matches_json(store: EventStore) -> None:
    for key in KEYS:
        params = {"key": key, "db": store.database}
        json_rows = store.backend.query(JSON_PATH, params)
        assert len(json_rows) == len(PROPERTIES)
        assert store.backend.query(MAP_PATH, params) == json_rows, key


@pytest.fixture
def own_store(engine_path: Path) -> Iterator[EventStore]:
    """A database of its own, not migrated: the test makes its tables as an older release did."""
    settings: Settings = load_settings(
        env={}, data_dir=str(engine_path.parent), clickhouse_database=random_database()
    )
    store = open_store(settings)
    try:
        yield store
    finally:
        store.drop_database()
        store.close()


def test_map_answers_as_the_json(clean_store: EventStore) -> None:
    clean_store.insert(make_events())
    assert_map_matches_json(clean_store)


def test_endpoints_read_properties_as_text(clean_store: EventStore) -> None:
    clean_store.insert(make_events())
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))

    def breakdown(key: str, filters: Filter = DAY) -> list[tuple[str, int]]:
        rows = reader.breakdown(filters, by=f"property:{key}", limit=20).rows
        return sorted((row.value, row.events) for row in rows)

    # Only events that have the key; a string as itself, anything else as its JSON text.
    assert breakdown("plan") == [("", 1), ("free", 1), ("pro", 1)]
    assert breakdown("n") == [("3", 3)]  # 3, 3.0 (ClickHouse writes its JSON text as 3) and "3", as before
    assert breakdown("nested") == [('[{"x":1}]', 1), ('{"a":[1,"two",{"b":null}],"c":{"d":true}}', 1)]
    assert breakdown("nothing") == [("null", 2)]
    assert breakdown("quote") == [("'single'", 1), ('say "hi" \\ there', 1)]
    assert breakdown("unicode") == [("é 日本語 😀\n\ttab", 1)]
    assert breakdown("missing") == []
    with_filter = DAY._replace(properties=(("quote", 'say "hi" \\ there'), ("big", str(2**62))))
    assert breakdown("plan", with_filter) == [("pro", 1)]
    # A missing key reads as '': the filter `key:` matched such rows before and still does.
    assert reader.breakdown(DAY._replace(properties=(("empty", ""),)), by="event_type", limit=5).rows[0].events == 5
    series = reader.timeseries(DAY, interval="day", group_by="property:yes")
    assert sorted((s.name, s.points[0].events) for s in series.series) == [("true", 2)]


def test_migrate_adds_the_column_to_a_table_made_before(own_store: EventStore) -> None:
    """An `events` table from before the column gets it, and the rows stored before are written into it."""
    own_store.migrate()
    # What a table made before the column is: the same table without it, rows stored so.
    own_store.backend.command(f"ALTER TABLE `{own_store.database}`.events DROP COLUMN property_values")
    own_store.insert(make_events())
    columns = {name for (name,) in own_store.backend.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'events'", {"db": own_store.database}
    )}
    assert "property_values" not in columns

    own_store.migrate()
    own_store.migrate()  # again: nothing more to add or write
    [(kind, type_)] = own_store.backend.query(
        "SELECT default_kind, type FROM system.columns"
        " WHERE database = {db:String} AND table = 'events' AND name = 'property_values'",
        {"db": own_store.database},
    )
    assert (kind, type_) == ("MATERIALIZED", "Map(String, String)")
    assert_map_matches_json(own_store)  # right at once, even before the parts are rewritten
    mutations = own_store.backend.query(
        "SELECT command FROM system.mutations WHERE database = {db:String} AND table = {table:String}"
        " ORDER BY create_time, mutation_id",
        {"db": own_store.database, "table": EVENTS_TABLE},
    )
    # One MATERIALIZE (the second migrate found the column there), after the test's DROP.
    assert [command for (command,) in mutations][-1:] == ["(MATERIALIZE COLUMN property_values)"]
    assert sum("MATERIALIZE" in command for (command,) in mutations) == 1
    deadline = time.monotonic() + 30
    while own_store.backend.query(
        "SELECT count() FROM system.mutations WHERE database = {db:String} AND NOT is_done", {"db": own_store.database}
    ) != [(0,)]:
        assert time.monotonic() < deadline, "MATERIALIZE COLUMN did not finish in 30 s"
        time.sleep(0.1)
    [(parts, written)] = own_store.backend.query(
        "SELECT uniqExact(name), countIf(column = 'property_values') FROM system.parts_columns"
        " WHERE database = {db:String} AND table = 'events' AND active",
        {"db": own_store.database},
    )
    assert parts > 0 and written == parts  # every stored part now holds the column (ADD alone writes none)
    assert_map_matches_json(own_store)


def test_cluster_ddl_is_valid_clickhouse_sql(store: EventStore) -> None:
    """The cluster form with the column and its migration: ClickHouse's own parser accepts each statement."""
    statements = schema_statements("analytics", "prod") + materialize_statements("analytics", "prod", ["property_values"])
    with_column = [s for s in statements if "property_values" in s]
    assert len(with_column) == 4  # events_local's CREATE, the ALTER of each table, the MATERIALIZE of the local one
    for statement in statements:
        [(formatted,)] = store.backend.query("SELECT formatQuery({sql:String})", {"sql": statement})
        assert "ON CLUSTER prod" in formatted


def test_copies_and_the_grouped_fallback_read_the_map_too(
    clean_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored copy (same id, later) is counted once on each of the three forms of `source`."""
    events = make_events()
    copy = msgspec.structs.replace(events[0], timestamp=events[0].timestamp + 90_000)
    clean_store.insert(events)
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    filters = DAY._replace(properties=(("yes", "true"),))

    def answers() -> tuple[object, ...]:
        return (
            reader.breakdown(filters, by="property:nested", limit=10),
            reader.breakdown(DAY, by="property:plan", limit=10),
            reader.timeseries(filters, interval="hour", group_by="property:plan"),
        )

    plain = answers()  # no copies: one scan
    clean_store.insert([copy])
    assert reader.duplicates(DAY) == ["p0"]
    with_copy = answers()  # the copy grouped with its event
    monkeypatch.setattr(analytics_sql, "MAX_DUPLICATES", 0)
    assert reader.duplicates(DAY) is None
    grouped = answers()  # every row grouped by id
    assert plain == with_copy == grouped
    assert [(row.value, row.events) for row in plain[1].rows] == [("", 1), ("free", 1), ("pro", 1)]

