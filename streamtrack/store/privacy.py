"""Privacy in the store: the retention TTL of the events (and what is derived from them), and
erasing one user's events.

Retention is a ClickHouse table TTL (`ALTER … MODIFY TTL`): ClickHouse drops expired rows in
the background while merging, no cron job needed. It is applied at start-up from
STREAMTRACK_RETENTION_DAYS (a validated integer, so formatting it into the DDL is safe);
0 removes a TTL set before.
Erasure uses a lightweight `DELETE` (rows vanish from reads at once, space is reclaimed by
merges), scoped to one project, matching the user id or the anonymous id.
"""

from __future__ import annotations

from streamtrack.store.schema import (
    ALIASES_TABLE,
    COPIES_TABLE,
    COPY_ROWS_TABLE,
    DAILY_TABLE,
    EVENT_IDS_TABLE,
    EVENTS_TABLE,
    HOURLY_TABLE,
    IDENTITIES_TABLE,
    LOCAL_TABLE,
    _on_cluster,
    daily_select,
    hourly_select,
    quote_identifier,
)
from streamtrack.store.store import EventStore

_USER_ROWS = "project_id = {project:String} AND (user_id = {user:String} OR anonymous_id = {user:String})"


def _holder(store: EventStore, table: str) -> str:
    """The name of the table that holds the rows: the local one in a cluster (a Distributed table cannot be altered)."""
    if not store.cluster:
        return table
    return LOCAL_TABLE if table == EVENTS_TABLE else f"{table}_local"


def _data_table(store: EventStore, table: str = EVENTS_TABLE) -> str:
    return f"{quote_identifier(store.database)}.`{_holder(store, table)}`{_on_cluster(store.cluster)}"


RETAINED_TABLES = {
    EVENTS_TABLE: "toDateTime(timestamp)",
    COPY_ROWS_TABLE: "toDateTime(timestamp)",
    EVENT_IDS_TABLE: "toDateTime(timestamp)",
    COPIES_TABLE: "toDateTime(last)",
    DAILY_TABLE: "toDateTime(day)",
    HOURLY_TABLE: "hour",
}
"""The tables whose rows expire, and the time each row expires from: the events, and what was
derived from them (the copies registry and rows, the rollups, whose user states hold user
hashes), so that nothing outlives the events and all-time answers stay what the rows say."""


def retention_statements(store: EventStore, days: int) -> list[str]:
    if days > 0:
        return [
            f"ALTER TABLE {_data_table(store, table)} MODIFY TTL {time} + toIntervalDay({int(days)})"
            for table, time in RETAINED_TABLES.items()
        ]
    statements = []
    for table in RETAINED_TABLES:
        rows = store.backend.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String} "
            "AND position(create_table_query, ' TTL ') > 0",
            {"db": store.database, "table": _holder(store, table)},
        )
        if rows and int(rows[0][0]):
            statements.append(f"ALTER TABLE {_data_table(store, table)} REMOVE TTL")
    return statements


def apply_retention(store: EventStore, days: int) -> None:
    for statement in retention_statements(store, days):
        store.backend.command(statement)


def _user_rows(store: EventStore, project_id: str, user: str) -> tuple[int, list[str], list[str]]:
    """(rows, distinct event ids, UTC days) of the user's events in the project."""
    [(rows, ids, days)] = store.backend.query(
        "SELECT count(), groupUniqArray(event_id), arrayMap(d -> toString(d), groupUniqArray(toDate(timestamp))) "
        f"FROM {quote_identifier(store.database)}.`{EVENTS_TABLE}` WHERE {_USER_ROWS}",
        {"project": project_id, "user": user},
    )
    return int(rows), list(ids), list(days)


def _erase_identity(store: EventStore, params: dict[str, object]) -> None:
    """The user's Segment traits, the group calls they made, and the alias links naming them."""
    store.backend.command(
        f"DELETE FROM {_data_table(store, IDENTITIES_TABLE)} WHERE project_id = {{project:String}}"
        " AND ((kind = 'user' AND id = {user:String}) OR member = {user:String})",
        params,
    )
    store.backend.command(
        f"DELETE FROM {_data_table(store, ALIASES_TABLE)} WHERE project_id = {{project:String}}"
        " AND (previous_id = {user:String} OR user_id = {user:String})",
        params,
    )


def erase_user(store: EventStore, project_id: str, user: str) -> int:
    """Delete the user's events in the project; returns the rows removed (copies included).

    What was derived from those rows goes too: the user's traits, group calls and alias links
    (`identities`, `aliases`), their ids in the copies registry (`event_ids`,
    `event_copies`, `event_copy_rows`), and the daily and hourly rollup rows of the project's affected days, rebuilt from the
    events that remain (the rollup's user states hold the user's hash). Events of the same
    project and day inserted during the rebuild, between its delete and its insert, would be
    counted twice in the rollup; erasure is rare and concerns past days, so this is accepted.
    """
    found, event_ids, days = _user_rows(store, project_id, user)
    params: dict[str, object] = {"project": project_id, "user": user, "ids": event_ids, "days": days}
    _erase_identity(store, params)
    if not found:
        return 0
    db = quote_identifier(store.database)
    store.backend.command(f"DELETE FROM {_data_table(store)} WHERE {_USER_ROWS}", params)
    for table in (EVENT_IDS_TABLE, COPIES_TABLE, COPY_ROWS_TABLE):
        store.backend.command(
            f"DELETE FROM {_data_table(store, table)} WHERE project_id = {{project:String}} AND event_id IN {{ids:Array(String)}}",
            params,
        )
    in_days = "project_id = {project:String} AND toDate(timestamp) IN {days:Array(Date)}"
    store.backend.command(
        f"DELETE FROM {_data_table(store, DAILY_TABLE)} WHERE project_id = {{project:String}} AND day IN {{days:Array(Date)}}",
        params,
    )
    store.backend.command(
        f"INSERT INTO {db}.`{DAILY_TABLE}`\n{daily_select(f'(SELECT * FROM {db}.`{EVENTS_TABLE}` WHERE {in_days})')}",
        params,
    )
    store.backend.command(
        f"DELETE FROM {_data_table(store, HOURLY_TABLE)} WHERE project_id = {{project:String}} AND toDate(hour) IN {{days:Array(Date)}}",
        params,
    )
    store.backend.command(
        f"INSERT INTO {db}.`{HOURLY_TABLE}`\n{hourly_select(f'(SELECT * FROM {db}.`{EVENTS_TABLE}` WHERE {in_days})')}",
        params,
    )
    return found
