"""The retention TTL (STREAMTRACK_RETENTION_DAYS) on the real embedded ClickHouse: set, effective, removed."""

from __future__ import annotations

from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore
from streamtrack.store.analytics_reader import Analytics
from streamtrack.store.privacy import apply_retention, retention_statements
from streamtrack.store.scoped import project_store
from streamtrack.timestamps import now_ms

DAY_MS = 86_400_000


def ttl_of(store: EventStore, table: str = "events") -> str:
    [(ddl,)] = store.backend.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": store.database, "table": table},
    )
    return ddl.partition(" TTL ")[2].partition(" SETTINGS")[0]


def test_retention_deletes_old_events_and_can_be_removed(clean_store: EventStore) -> None:
    now = now_ms()
    clean_store.insert([
        Event(event_id=f"e-{age}", event_type="click", timestamp=now - age * DAY_MS, received_at=now, user_id="u")
        for age in (1, 29, 31, 400)
    ])
    apply_retention(clean_store, 30)
    apply_retention(clean_store, 30)  # every start applies it again: harmless
    assert ttl_of(clean_store) == "toDateTime(timestamp) + toIntervalDay(30)"
    clean_store.backend.command(f"OPTIMIZE TABLE `{clean_store.database}`.events FINAL")  # what merges do over time
    left = clean_store.backend.query(f"SELECT event_id FROM `{clean_store.database}`.events ORDER BY event_id")
    assert left == [("e-1",), ("e-29",)]
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    # What is derived from the events (the projections the all-time answers read) expires with them.
    assert reader.overview(now_ms=now).total_events == 2
    assert reader.active_users(now_ms=now, window_minutes=5, day_ms=now // DAY_MS * DAY_MS).mau == 1
    apply_retention(clean_store, 0)
    assert ttl_of(clean_store) == ""
    assert retention_statements(clean_store, 0) == []  # nothing to remove any more
