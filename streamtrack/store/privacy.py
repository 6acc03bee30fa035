"""Privacy in the store: the retention TTL of the events, and erasing one user.

Retention is a ClickHouse table TTL (`ALTER … MODIFY TTL`): ClickHouse drops expired rows in
the background while merging, and rebuilds the projections of the parts it rewrites, so
nothing derived outlives the events. It is applied at start-up from
STREAMTRACK_RETENTION_DAYS (a validated integer, so formatting it into the DDL is safe);
0 removes a TTL set before.

Erasure removes a user's events and every id linked to the user: the ids that identify and
alias calls joined to it, and the anonymous ids its events were sent with. It writes a
tombstone per id first (`erasures`), then deletes (a lightweight `DELETE`: rows vanish from
reads at once). The worker drops events of tombstoned ids received before the erasure, also
those still in Kafka when it ran (`worker.erasures`), so an erased user stays erased.
"""

from __future__ import annotations

from streamtrack.store.schema import (
    ALIASES_TABLE,
    ERASURES_TABLE,
    EVENTS_TABLE,
    IDENTITIES_TABLE,
    data_table,
    on_cluster,
    quote_identifier,
)
from streamtrack.store.store import EventStore
from streamtrack.timestamps import now_ms

MAX_LINK_ROUNDS = 10
"""Links followed from the erased id (a -> b -> user): more than enough for real identity graphs."""


def _data_table(store: EventStore, table: str = EVENTS_TABLE) -> str:
    name = data_table(table, store.cluster)
    return f"{quote_identifier(store.database)}.{quote_identifier(name)}{on_cluster(store.cluster)}"


def retention_statements(store: EventStore, days: int) -> list[str]:
    if days > 0:
        return [f"ALTER TABLE {_data_table(store)} MODIFY TTL toDateTime(timestamp) + toIntervalDay({int(days)})"]
    rows = store.backend.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String} "
        "AND position(create_table_query, ' TTL ') > 0",
        {"db": store.database, "table": data_table(EVENTS_TABLE, store.cluster)},
    )
    return [f"ALTER TABLE {_data_table(store)} REMOVE TTL"] if rows and int(rows[0][0]) else []


def apply_retention(store: EventStore, days: int) -> None:
    for statement in retention_statements(store, days):
        store.backend.command(statement)


def linked_ids(store: EventStore, project_id: str, user: str) -> list[str]:
    """The user and the ids that became it in the project: ids aliased to it (identify and alias
    calls, chains followed back) and the anonymous ids its identified events carried.

    Only towards the user: an anonymous id is not followed to the other users who used it (a
    shared device), whose own events are not this user's to erase.
    """
    db = quote_identifier(store.database)
    ids = {user}
    for _ in range(MAX_LINK_ROUNDS):
        params = {"project": project_id, "ids": sorted(ids)}
        [(found,)] = store.backend.query(
            "SELECT arrayDistinct(arrayConcat("
            f"(SELECT groupArray(previous_id) FROM {db}.`{ALIASES_TABLE}` WHERE project_id = {{project:String}}"
            " AND user_id IN {ids:Array(String)}),"
            f"(SELECT groupUniqArray(anonymous_id) FROM {db}.`{EVENTS_TABLE}` WHERE project_id = {{project:String}}"
            " AND user_id IN {ids:Array(String)} AND anonymous_id != '')))",
            params,
        )
        new = set(found) - ids
        if not new:
            break
        ids |= new
    return sorted(ids)


# An event is the erased user's when it was sent with one of the ids as its user id, or, sent
# anonymously, with one of them as its anonymous id (another user's identified events that
# carry a shared anonymous id stay). `worker.erasures` applies the same rule to events in flight.
_ID_ROWS = (
    "project_id = {project:String} AND (user_id IN {ids:Array(String)}"
    " OR (user_id = '' AND anonymous_id IN {ids:Array(String)}))"
)


def erase_user(store: EventStore, project_id: str, user: str) -> int:
    """Erase the user and its linked ids in the project; returns the event rows removed.

    Tombstones first, so events in flight are dropped by the worker; then the events, the
    traits and group calls (`identities`) and the links (`aliases`) of those ids.
    """
    ids = linked_ids(store, project_id, user)
    params: dict[str, object] = {"project": project_id, "ids": ids, "at": now_ms()}
    db = quote_identifier(store.database)
    store.backend.command(
        f"INSERT INTO {db}.`{ERASURES_TABLE}` (project_id, id, erased_at)"
        " SELECT {project:String}, arrayJoin({ids:Array(String)}), fromUnixTimestamp64Milli({at:Int64}, 'UTC')",
        params,
    )
    [(found,)] = store.backend.query(f"SELECT count() FROM {db}.`{EVENTS_TABLE}` WHERE {_ID_ROWS}", params)
    if found:
        store.backend.command(f"DELETE FROM {_data_table(store)} WHERE {_ID_ROWS}", params)
    store.backend.command(
        f"DELETE FROM {_data_table(store, IDENTITIES_TABLE)} WHERE project_id = {{project:String}}"
        " AND ((kind = 'user' AND id IN {ids:Array(String)}) OR member IN {ids:Array(String)})",
        params,
    )
    store.backend.command(
        f"DELETE FROM {_data_table(store, ALIASES_TABLE)} WHERE project_id = {{project:String}}"
        " AND (previous_id IN {ids:Array(String)} OR user_id IN {ids:Array(String)})",
        params,
    )
    return int(found)


def tombstones_since(store: EventStore, since_ms: int) -> list[tuple[str, str, int]]:
    """(project_id, id, erased_at ms) of the erasures at or after `since_ms` (the worker's view)."""
    return [
        (row[0], row[1], int(row[2]))
        for row in store.backend.query(
            f"SELECT project_id, id, toUnixTimestamp64Milli(erased_at) FROM {quote_identifier(store.database)}.`{ERASURES_TABLE}`"
            " WHERE erased_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')",
            {"since": since_ms},
        )
    ]


def delete_erased(store: EventStore, project_id: str, ids: list[str], erased_at_ms: int) -> None:
    """Delete the project's events of `ids` received up to `erased_at_ms`, and the identity calls
    and links those events made (the worker, when it reads new tombstones: also what an insert
    that raced the erasure stored)."""
    params = {"project": project_id, "ids": ids, "at": erased_at_ms}
    covered = f"{_ID_ROWS} AND received_at <= fromUnixTimestamp64Milli({{at:Int64}}, 'UTC')"
    db = quote_identifier(store.database)
    for table in (IDENTITIES_TABLE, ALIASES_TABLE):  # first: they are found through the events
        store.backend.command(
            f"DELETE FROM {_data_table(store, table)} WHERE project_id = {{project:String}} AND event_id IN"
            f" (SELECT event_id FROM {db}.`{EVENTS_TABLE}` WHERE {covered})",
            params,
        )
    store.backend.command(f"DELETE FROM {_data_table(store)} WHERE {covered}", params)
