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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamtrack.config import Settings, load_settings
from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore, open_store
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import Analytics
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
