"""EventStore: the one object the rest of StreamTrack uses to store and read events.

It holds a backend (embedded chdb or a ClickHouse server, see `open_store`) and a database
name, and turns Events into Arrow batches and result rows back into Events. All SQL comes
from `queries` and `schema`; this module decides nothing about SQL itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from streamtrack.config import Settings
from streamtrack.errors import ConfigError, StoreUnavailable
from streamtrack.events import Event
from streamtrack.store import copies, queries
from streamtrack.store.backend import Backend
from streamtrack.store.codec import events_to_arrow, rows_to_events
from streamtrack.store.schema import (
    EVENTS_TABLE,
    LOCAL_TABLE,
    MATERIALIZED_COLUMNS,
    SORTING_KEY,
    copies_statements,
    drop_statements,
    hourly_statements,
    identity_statements,
    materialize_statements,
    quote_identifier,
    rollup_statements,
    schema_statements,
)


log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class StoreStats:
    rows: int
    """Rows as stored, a redelivered event counted until merges collapse it."""
    distinct_events: int
    """Distinct event ids: what users see."""


class EventStore:
    """Events in one ClickHouse database. Thread-safe; share one per process."""

    def __init__(self, backend: Backend, database: str, *, cluster: str = "") -> None:
        quote_identifier(database)  # fail now, not at the first query
        self.backend = backend
        self.database = database
        self.cluster = cluster

    def migrate(self) -> None:
        """Create or update the schema; harmless to run on every start."""
        # A table made before a materialized column gets it, then has it written into its parts.
        table = LOCAL_TABLE if self.cluster else EVENTS_TABLE
        stored = {name for (name,) in self._query_rows(queries.table_columns(self.database, table))}
        unwritten = [name for name, _ in MATERIALIZED_COLUMNS if stored and name not in stored]
        for statement in schema_statements(self.database, self.cluster) + identity_statements(self.database, self.cluster):
            self.backend.command(statement)
        for statement in materialize_statements(self.database, self.cluster, unwritten):
            self.backend.command(statement)
        for statement in copies_statements(self.database, self.cluster) + rollup_statements(self.database, self.cluster):
            self.backend.command(statement)
        for statement in hourly_statements(self.database, self.cluster):
            self.backend.command(statement)
        if self._query_rows(copies.needs_backfill(self.database)) == [(1,)]:
            for statement in copies.backfill(self.database):
                self.backend.command(statement)
        self._warn_of_an_old_sorting_key(table)

    def _warn_of_an_old_sorting_key(self, table: str) -> None:
        """A sorting key cannot gain a column it did not have: say so for a table made before
        `project_id` joined it (pre-release development data), instead of rebuilding it here."""
        rows = self._query_rows(queries.sorting_key(self.database, table))
        if rows and rows[0][0] != SORTING_KEY:
            log.warning(
                "events table sorted without project_id: merges can collapse two projects' events that share"
                " an id, type and time; copy the data into a new database to fix it",
                database=self.database, sorting_key=rows[0][0],
            )

    def ping(self) -> None:
        """Raise StoreUnavailable unless ClickHouse answers a query."""
        rows = self.backend.query(queries.PING.sql)
        if rows != [(1,)]:
            raise StoreUnavailable(f"unexpected answer to {queries.PING.sql!r}: {rows!r}")

    def insert(self, events: Sequence[Event], dedup_token: str | None = None) -> int:
        """Store a batch in one insert; returns the number of events sent.

        Inserting the same batch again with the same `dedup_token` stores nothing (the
        worker's replay after a crash); without a token, a repeat is stored but still
        read back once, since reads deduplicate by event id, and is listed in the copies
        registry the analytics read (`copies`).
        """
        if dedup_token is not None:
            queries.check_dedup_token(dedup_token)
        if not events:
            return 0
        self.backend.insert_events(self.database, EVENTS_TABLE, events_to_arrow(events), dedup_token)
        # After the insert, not before: see `copies` for why this finds every copy, races included.
        self.record_copies([event.event_id for event in events])
        return len(events)

    def record_copies(self, event_ids: Sequence[str]) -> None:
        """List those of `event_ids` stored more than once in the copies registry, with their rows
        (see `copies`): after each insert, and for ids a replay finds stored already (the insert
        before the crash may not have got this far)."""
        found = self._query_rows(copies.copied(self.database, event_ids))
        for statement in copies.record(self.database, [event_id for (event_id,) in found]):  # usually none
            self.backend.command(statement.sql, statement.params)

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
        """Events newest first, each once; `start_ms` inclusive, `end_ms` exclusive.

        `after=(timestamp_ms, event_id)` of the last event of a page gives the next page:
        events strictly older in the order (timestamp DESC, event_id DESC). An event stored
        more than once sorts at its earliest copy (within the filters).

        Fast path: the newest rows after the cursor (read in key order, a few ms), then every
        copy of those events. Any event outside those rows sorts at or below the last of them,
        so the events whose earliest copy is at or above it form an exact page. Only when
        copies crowd the page below `limit` does the exact single query run.
        """
        filters = queries.ActivityFilter(user_id, event_type, session_id, start_ms, end_ms, project_id)
        wanted = min(limit * 2 + 16, queries.MAX_LIMIT)
        candidates = self._query_rows(queries.activity_candidates(self.database, filters, after=after, limit=wanted))
        if not candidates:
            return []
        ids = list(dict.fromkeys(event_id for event_id, _ in candidates))
        earliest: dict[str, Event] = {}
        for event in rows_to_events(self._query_rows(queries.events_by_id(self.database, filters, ids))):
            known = earliest.get(event.event_id)
            if known is None or event.timestamp < known.timestamp:
                earliest[event.event_id] = event
        page = [e for e in earliest.values() if after is None or (e.timestamp, e.event_id) < after]
        complete = len(candidates) < wanted  # every row after the cursor was a candidate
        if not complete:
            last_id, last_ms = candidates[-1]
            page = [e for e in page if (e.timestamp, e.event_id) >= (int(last_ms), last_id)]
        page.sort(key=lambda e: (e.timestamp, e.event_id), reverse=True)
        if complete or len(page) >= limit:
            return page[:limit]
        exact = queries.activities(self.database, filters, after=after, limit=limit)
        return rows_to_events(self._query_rows(exact))

    def _query_rows(self, query: queries.Query) -> list[tuple[Any, ...]]:
        return self.backend.query(query.sql, query.params)

    def stored_event_ids(self, events: Sequence[Event]) -> set[tuple[str, str]]:
        """(project_id, event_id) of those of `events` stored already, looked up on each event's day ± 1.

        A copy can differ only in a server-assigned timestamp (a client retry without its own
        time), which lies seconds to minutes from the first; one day either side covers it.
        """
        if not events:
            return set()
        days = sorted({
            (datetime.fromtimestamp(event.timestamp / 1000, UTC).date() + timedelta(days=shift)).isoformat()
            for event in events
            for shift in (-1, 0, 1)
        })
        query = queries.stored_event_ids(self.database, [event.event_id for event in events], days)
        return {(row[0], row[1]) for row in self.backend.query(query.sql, query.params)}  # (project_id, event_id)

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
