"""The ingest rate the dashboard's pipeline panel shows: events stored per second, recently.

Counted on `received_at` (when the API took the event), not on the event's own time, so a
backfill of old events shows as ingestion now. Each event id counts once, like every read.
"""

from __future__ import annotations

from streamtrack.store.queries import Query
from streamtrack.store.schema import EVENTS_TABLE, quote_identifier
from streamtrack.store.store import EventStore

WINDOW_S = 60


def ingest_rate_query(database: str, window_s: int = WINDOW_S, project_id: str | None = None) -> Query:
    if not isinstance(window_s, int) or not 1 <= window_s <= 86_400:
        raise ValueError(f"window_s must be an int from 1 to 86400, got {window_s!r}")
    table = f"{quote_identifier(database)}.{quote_identifier(EVENTS_TABLE)}"
    sql = (
        f"SELECT uniqExact(event_id) FROM {table}\n"
        "WHERE received_at >= now64(3, 'UTC') - toIntervalSecond({window_s:UInt32})"
    )
    if project_id is None:
        return Query(sql, {"window_s": window_s})
    return Query(sql + " AND project_id = {project_id:String}", {"window_s": window_s, "project_id": project_id})


def ingest_rate(store: EventStore, window_s: int = WINDOW_S, project_id: str | None = None) -> float:
    """Distinct events received in the last `window_s` seconds, per second (of one project, when given)."""
    query = ingest_rate_query(store.database, window_s, project_id)
    [(count,)] = store.backend.query(query.sql, query.params)
    return int(count) / window_s
