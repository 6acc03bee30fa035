"""The analytics SQL is written so that ClickHouse answers from the events table's projections
(schema.PROJECTIONS); `force_optimize_projection` makes a query that no projection answers fail."""

from __future__ import annotations

import pytest

from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore, queries
from streamtrack.store import analytics as sql
from streamtrack.store.analytics import Filter
from streamtrack.store.scoped import project_store

T0 = 1_780_000_000_000
HOUR, DAY = 3_600_000, 86_400_000

CASES = {
    "overview": sql.overview("db"),
    "dau/wau/mau": sql.daily_users("db", "2026-05-01", "2026-05-30"),
    "hourly timeseries": sql.timeseries("db", Filter(), step_ms=HOUR, origin_ms=0, first_ms=T0, end_ms=T0 + DAY, links=False),
    "daily timeseries by type, one channel": sql.timeseries(
        "db", Filter(channel="web"), step_ms=DAY, origin_ms=0, first_ms=T0, end_ms=T0 + 7 * DAY,
        group_by="event_type", top=["click"], links=False,
    ),
    "the worker's lookup by id": queries.stored_ids("db", DEFAULT_PROJECT, ["e1", "e2"], None),
}


@pytest.mark.parametrize("name", CASES)
def test_a_projection_answers(clean_store: EventStore, name: str) -> None:
    clean_store.insert([
        Event(event_id=f"e{i}", event_type="click", timestamp=T0 + i * HOUR, received_at=T0, user_id="u", channel="web")
        for i in range(30)
    ])
    query = CASES[name]
    reader = project_store(clean_store, DEFAULT_PROJECT)
    text = query.sql.replace("`db`", f"`{clean_store.database}`") + "\nSETTINGS force_optimize_projection = 1"
    rows = reader.backend.query(text, query.params)
    assert rows  # and no PROJECTION_NOT_USED error
    plain = reader.backend.query(text.replace("force_optimize_projection = 1", "optimize_use_projections = 0"), query.params)
    assert rows == plain  # the projection answers what the rows answer
