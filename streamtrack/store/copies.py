"""The SQL of the copies registry: which event ids are stored more than once, known at write time.

Copies arise only when the worker's pre-insert lookup misses (two workers racing across a
rebalance, a retry outside the lookup window, a direct insert), so they are rare; finding
them by grouping every row in a query's range costs a full extra scan (~0.2-1 s at 10M
rows). Instead, `EventStore.insert` runs `record` after each insert: a primary-key lookup of
the batch's ids in `event_ids` (one row per stored row, see `schema.copies_statements`),
recording those with more than one row in `event_copies`.

Why no copy is missed: an insert's rows are visible once it returns, so of two concurrent
inserts of the same id, the one that returns last runs its lookup after both are visible
and records the copy. A replay dropped by its deduplication token adds no row to `events`
nor to `event_ids`, so it records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamtrack.store.queries import Query
from streamtrack.store.schema import COPIES_TABLE, EVENT_IDS_TABLE, EVENTS_TABLE, quote_identifier

_SUMMARY = "event_id, min(timestamp), max(timestamp), count()"


def _table(database: str, name: str) -> str:
    return f"{quote_identifier(database)}.`{name}`"


def record(database: str, event_ids: Sequence[str]) -> Query:
    """Record in `event_copies` those of `event_ids` stored more than once (run after their insert)."""
    sql = "\n".join(
        [
            f"INSERT INTO {_table(database, COPIES_TABLE)}",
            f"SELECT {_SUMMARY} FROM {_table(database, EVENT_IDS_TABLE)}",
            "WHERE event_id IN {ids:Array(String)}",
            "GROUP BY event_id HAVING count() > 1",
        ]
    )
    return Query(sql, {"ids": list(dict.fromkeys(event_ids))})


def needs_backfill(database: str) -> Query:
    """One row (1 or 0): `event_ids` is empty while `events` has rows (data stored before the registry)."""
    sql = (
        f"SELECT (SELECT count() FROM {_table(database, EVENT_IDS_TABLE)}) = 0"
        f" AND (SELECT count() FROM {_table(database, EVENTS_TABLE)}) > 0"
    )
    return Query(sql, {})


def backfill(database: str) -> list[str]:
    """Fill the registry from the rows already stored: every id, then the copies among them.

    A row inserted while this runs reaches `event_ids` twice (by the view and by this copy),
    so its id may be listed as a copy: only an extra candidate, counts stay exact.
    """
    ids = _table(database, EVENT_IDS_TABLE)
    return [
        f"INSERT INTO {ids} SELECT event_id, timestamp FROM {_table(database, EVENTS_TABLE)}",
        f"INSERT INTO {_table(database, COPIES_TABLE)}\nSELECT {_SUMMARY} FROM {ids}\n"
        "GROUP BY event_id HAVING count() > 1",
    ]


def candidate_hashes(database: str, start_ms: int | None, end_ms: int | None, *, limit: int) -> Query:
    """cityHash64 (as text) of the ids with copies whose times overlap [start_ms, end_ms).

    An id with no copy in the range is only an extra candidate (grouped, counted once anyway).
    """
    params: dict[str, Any] = {"limit": limit}
    where = []
    if start_ms is not None:
        params["start_ms"] = start_ms
        where.append("last >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')")
    if end_ms is not None:
        params["end_ms"] = end_ms
        where.append("first < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')")
    sql = "\n".join(
        [
            f"SELECT toString(cityHash64(event_id)) AS h FROM {_table(database, COPIES_TABLE)}",
            "WHERE " + " AND ".join(where) if where else "",
            "GROUP BY h",
            "LIMIT {limit:UInt32}",
        ]
    )
    return Query(sql, params)
