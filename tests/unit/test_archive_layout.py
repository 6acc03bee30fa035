"""The archive's names and format, the replay's selection, and what a dead letter says about its project."""

from __future__ import annotations

import gzip

import pytest

from streamtrack.archive import layout
from streamtrack.archive.reader import Selection
from streamtrack.deadletters.loader import claimed_ids
from streamtrack.events import Event
from streamtrack.store.deadletters import parse_id, statements

T = 1_764_813_600_000  # 2025-12-04T02:00:00Z


def test_object_names_round_trip_and_carry_project_date_hour_and_offsets() -> None:
    name = layout.object_name("events", "shop-1", "2025-12-04", 2, "events.v2-a", 3, 100, 250)
    assert name == "events/project=shop-1/date=2025-12-04/hour=02/events.v2-a-3-100-250.ndjson.gz"
    key = layout.parse_object_name("events", name)
    assert key == layout.ObjectKey("shop-1", "2025-12-04", 2, "events.v2-a", 3, 100, 250)
    assert key.hour_start_ms == T
    assert layout.parse_object_name("events", "events/_manifests/t/3/100-250.json") is None
    assert layout.parse_object_name("other", name) is None
    assert layout.hour_of(T + 59 * 60_000) == ("2025-12-04", 2)


def test_objects_are_gzip_ndjson_with_the_same_bytes_for_the_same_events() -> None:
    events = [Event(event_id=f"e{i}", event_type="x", timestamp=T, received_at=T + i, project_id="p") for i in range(3)]
    data = layout.encode_objects(events)
    assert data == layout.encode_objects(events)  # no time in the gzip header: a retry writes the same object
    assert gzip.decompress(data).count(b"\n") == 3
    assert layout.decode_objects(data) == events


def test_selection_by_project_and_receipt_time() -> None:
    key = layout.ObjectKey("p", "2025-12-04", 2, "t", 0, 0, 9)
    event = Event(event_id="e", event_type="x", timestamp=0, received_at=T + 1000, project_id="p")
    assert Selection().may_hold(key) and Selection(project="p").holds(event)
    assert not Selection(project="q").may_hold(key)
    assert Selection(since_ms=T + 3_599_999).may_hold(key) and not Selection(since_ms=T + 3_600_000).may_hold(key)
    assert not Selection(until_ms=T).may_hold(key)
    assert Selection(since_ms=T + 1000).holds(event) and not Selection(until_ms=T + 1000).holds(event)


@pytest.mark.parametrize(("value", "expected"), [
    (b'{"event_id": "e1", "event_type": "x", "project_id": "shop"}', ("shop", "e1")),
    (b'{"event_id": "e1", "event_type": "x"}', ("default", "e1")),  # the API leaves the default project out
    (b'{"hello": "world"}', ("", "")),
    (b'[1, 2]', ("", "")),
    (b"\x00\xff", ("", "")),
    (None, ("", "")),
    (b'{"project_id": 5, "event_id": 7}', ("", "")),
])
def test_the_project_a_dead_letter_names(value: bytes | None, expected: tuple[str, str]) -> None:
    assert claimed_ids(value) == expected


def test_dead_letter_ids_and_table_forms() -> None:
    assert parse_id("3:1207") == (3, 1207)
    for bad in ("3", "a:1", "3:-1", ""):
        with pytest.raises(ValueError, match="partition:offset"):
            parse_id(bad)
    [single] = statements("db")
    assert "ReplacingMergeTree(updated_at)" in single and "ORDER BY (project_id," in single
    local, distributed = statements("db", "c1")
    assert "ReplicatedReplacingMergeTree" in local and "ON CLUSTER `c1`" in local
    assert "Distributed('c1', 'db', 'dead_letters_local', cityHash64(project_id))" in distributed
