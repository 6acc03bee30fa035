"""The ingest rate the dashboard's pipeline panel shows: events stored per second, recently.

Counted on `received_at` (when the API took the event), not on the event's own time, so a
backfill of old events shows as ingestion now. Each event id counts once, like every read.
"""

from __future__ import annotations

from streamtrack.store.queries import Query
from streamtrack.store.schema import EVENTS_TABLE, quote_identifier
from streamtrack.store.store import EventStore

WINDOW_S = 60


def ingest_rate_query(database: str, window_s: int = WINDOW_S) -> Query:
    if not isinstance(window_s, int) or not 1 <= window_s <= 86_400:
        raise ValueError(f"window_s must be an int from 1 to 86400, got {window_s!r}")
    table = f"{quote_identifier(database)}.{quote_identifier(EVENTS_TABLE)}"
    sql = (
        f"SELECT uniqExact(event_id) FROM {table}\n"
        "WHERE received_at >= now64(3, 'UTC') - toIntervalSecond({window_s:UInt32})"
    )
    return Query(sql, {"window_s": window_s})


def ingest_rate(store: EventStore, window_s: int = WINDOW_S) -> float:
    """Distinct events received in the last `window_s` seconds, per second."""
    query = ingest_rate_query(store.database, window_s)
    [(count,)] = store.backend.query(query.sql, query.params)
    return int(count) / window_s
