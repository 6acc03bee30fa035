"""EventStore: the one object the rest of StreamTrack uses to store and read events.

It holds a backend (embedded chdb or a ClickHouse server, see `open_store`) and a database
name, and turns Events into Arrow batches and result rows back into Events. All SQL comes
from `queries`, `schema` and `migrate`; this module decides nothing about SQL itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from streamtrack.config import Settings
from streamtrack.errors import ConfigError, StoreUnavailable
from streamtrack.events import Event
from streamtrack.store import migrate, queries
from streamtrack.store.backend import Backend
from streamtrack.store.codec import events_to_arrow, rows_to_events
from streamtrack.store.schema import EVENTS_TABLE, data_table, drop_statements, on_cluster, quote_identifier


@dataclasses.dataclass(frozen=True)
class StoreStats:
    rows: int
    """Rows as stored."""
    distinct_events: int
    """Distinct (project, event id): what users see; equal to `rows` unless a copy slipped past."""


class EventStore:
    """Events in one ClickHouse database. Thread-safe; share one per process."""

    def __init__(self, backend: Backend, database: str, *, cluster: str = "") -> None:
        quote_identifier(database)  # fail now, not at the first query
        self.backend = backend
        self.database = database
        self.cluster = cluster

    def migrate(self, *, rewrite: bool = False) -> None:
        """Create or update the schema (see `migrate`); data is rewritten only with `rewrite`."""
        migrate.migrate(self, rewrite=rewrite)

    def ping(self) -> None:
        """Raise StoreUnavailable unless ClickHouse answers a query."""
        rows = self.backend.query(queries.PING.sql)
        if rows != [(1,)]:
            raise StoreUnavailable(f"unexpected answer to {queries.PING.sql!r}: {rows!r}")

    def insert(self, events: Sequence[Event], dedup_token: str | None = None, *, batch: int = 0) -> int:
        """Store a batch in one insert; returns the number of events sent.

        The caller sends each event once (the worker's dedup). Inserting the same batch again
        with the same `dedup_token` stores nothing: a retry of an insert whose outcome was
        unknown. `batch` is written with every row (see `schema`: the fenced worker's undo).
        """
        if dedup_token is not None:
            queries.check_dedup_token(dedup_token)
        if not events:
            return 0
        settings = queries.insert_settings(dedup_token, cluster=bool(self.cluster))
        self.backend.insert_events(self.database, EVENTS_TABLE, events_to_arrow(events, batch), settings)
        return len(events)

    def _dedup_rows(self, query: queries.Query) -> list[tuple[Any, ...]]:
        settings = queries.CLUSTER_DEDUP_READ_SETTINGS if self.cluster else None
        return self.backend.query(query.sql, query.params, settings)  # type: ignore[arg-type]

    def stored_ids(self, project_id: str, event_ids: Sequence[str], days: Sequence[str] | None = None) -> set[str]:
        """Those of a project's `event_ids` stored already: on `days` (YYYY-MM-DD), or on any day."""
        if not event_ids:
            return set()
        return {row[0] for row in self._dedup_rows(queries.stored_ids(self.database, project_id, event_ids, days))}

    def recent_ids(self, since_ms: int, limit: int) -> list[tuple[str, str, int]]:
        """(project_id, event_id, epoch ms) of up to `limit` stored events timed `since_ms` or later."""
        return [(r[0], r[1], int(r[2])) for r in self._dedup_rows(queries.recent_ids(self.database, since_ms, limit))]

    def recent_minute_counts(self, since_ms: int) -> list[tuple[int, int]]:
        """(minute epoch ms, events) of the stored events timed `since_ms` or later."""
        return [(int(r[0]), int(r[1])) for r in self._dedup_rows(queries.recent_minute_counts(self.database, since_ms))]

    def delete_batch_copies(self, batch: int, keys: Iterable[tuple[str, str]]) -> None:
        """Delete the rows insert `batch` stored of these (project, event id) that a later insert
        stored too (a fenced worker's undo: `worker.fencing`). Rows stored only by `batch` stay."""
        by_project: dict[str, list[str]] = {}
        for project, event_id in keys:
            by_project.setdefault(project, []).append(event_id)
        db, here = quote_identifier(self.database), on_cluster(self.cluster)
        table = f"{db}.{quote_identifier(data_table(EVENTS_TABLE, self.cluster))}"
        for project, ids in by_project.items():
            self.backend.command(
                f"DELETE FROM {table}{here} WHERE project_id = {{project:String}} AND event_id IN {{ids:Array(String)}}"
                " AND insert_batch = {batch:UInt64} AND event_id IN (SELECT event_id FROM"
                f" {db}.`{EVENTS_TABLE}` WHERE project_id = {{project:String}} AND event_id IN {{ids:Array(String)}}"
                " AND insert_batch > {batch:UInt64})",
                {"project": project, "ids": ids, "batch": batch},
            )

    def activities(
        self,
        *,
        user_id: str | None = None,
        event_type: str | None = None,
        session_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        after: tuple[int, str] | None = None,
        limit: int,
        project_id: str | None = None,
    ) -> list[Event]:
        """Events newest first; `start_ms` inclusive, `end_ms` exclusive.

        `after=(timestamp_ms, event_id)` of the last event of a page gives the next page:
        events strictly older in the order (timestamp DESC, event_id DESC).
        """
        filters = queries.ActivityFilter(user_id, event_type, session_id, start_ms, end_ms, project_id)
        query = queries.activities(self.database, filters, after=after, limit=limit)
        return rows_to_events(self.backend.query(query.sql, query.params))

    def stats(self) -> StoreStats:
        query = queries.stats(self.database)
        [(rows, distinct)] = self.backend.query(query.sql, query.params)
        return StoreStats(rows=int(rows), distinct_events=int(distinct))

    def drop_database(self) -> None:
        """Delete this store's database and all its events (tests)."""
        for statement in drop_statements(self.database, self.cluster):
            self.backend.command(statement)

    def close(self) -> None:
        """Release the backend; idempotent."""
        self.backend.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_store(settings: Settings) -> EventStore:
    """The store the settings describe: embedded chdb without CLICKHOUSE_URL, else that server.

    The database is STREAMTRACK_CLICKHOUSE_DATABASE, or the one in CLICKHOUSE_URL's path.
    """
    if settings.embedded:
        if settings.clickhouse_cluster:
            raise ConfigError("STREAMTRACK_CLICKHOUSE_CLUSTER needs a ClickHouse server (CLICKHOUSE_URL)")
        # Imported here: each backend's library is heavy (chdb is a whole ClickHouse) and the
        # other mode never needs it.
        from streamtrack.store.embedded import EmbeddedBackend

        return EventStore(EmbeddedBackend(settings.clickhouse_path), settings.clickhouse_database)

    from streamtrack.store.server import ServerBackend, connect, parse_url

    address = parse_url(settings.clickhouse_url)
    database = address.database or settings.clickhouse_database
    try:
        quote_identifier(database)
    except ValueError as exc:
        raise ConfigError(f"CLICKHOUSE_URL: the database in the path is not a valid name: {exc}") from None
    backend = ServerBackend(lambda: connect(address))
    return EventStore(backend, database, cluster=settings.clickhouse_cluster)
