"""Privacy in the store: the retention TTL of the events table, and erasing one user's events.

Retention is a ClickHouse table TTL (`ALTER … MODIFY TTL`): ClickHouse drops expired rows in
the background while merging, no cron job needed. It is applied at start-up from
STREAMTRACK_RETENTION_DAYS (a validated integer, so formatting it into the DDL is safe);
0 removes a TTL set before.
Erasure uses a lightweight `DELETE` (rows vanish from reads at once, space is reclaimed by
merges), scoped to one project, matching the user id or the anonymous id.
"""

from __future__ import annotations

from streamtrack.store.schema import EVENTS_TABLE, LOCAL_TABLE, _on_cluster, quote_identifier
from streamtrack.store.store import EventStore

_USER_ROWS = "project_id = {project:String} AND (user_id = {user:String} OR anonymous_id = {user:String})"


def _data_table(store: EventStore) -> str:
    """The table that holds the rows: the local tables in a cluster (a Distributed table cannot be altered)."""
    table = LOCAL_TABLE if store.cluster else EVENTS_TABLE
    return f"{quote_identifier(store.database)}.`{table}`{_on_cluster(store.cluster)}"


def retention_statement(store: EventStore, days: int) -> str | None:
    if days > 0:
        return f"ALTER TABLE {_data_table(store)} MODIFY TTL toDateTime(timestamp) + toIntervalDay({int(days)})"
    rows = store.backend.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String} "
        "AND position(create_table_query, ' TTL ') > 0",
        {"db": store.database, "table": LOCAL_TABLE if store.cluster else EVENTS_TABLE},
    )
    return f"ALTER TABLE {_data_table(store)} REMOVE TTL" if rows and int(rows[0][0]) else None


def apply_retention(store: EventStore, days: int) -> None:
    statement = retention_statement(store, days)
    if statement is not None:
        store.backend.command(statement)


def count_user_rows(store: EventStore, project_id: str, user: str) -> int:
    rows = store.backend.query(
        f"SELECT count() FROM {quote_identifier(store.database)}.`{EVENTS_TABLE}` WHERE {_USER_ROWS}",
        {"project": project_id, "user": user},
    )
    return int(rows[0][0])


def erase_user(store: EventStore, project_id: str, user: str) -> int:
    """Delete the user's events in the project; returns the rows removed (copies included)."""
    found = count_user_rows(store, project_id, user)
    if found:
        store.backend.command(f"DELETE FROM {_data_table(store)} WHERE {_USER_ROWS}", {"project": project_id, "user": user})
    return found
