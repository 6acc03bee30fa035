"""What one key's reads may cost: a bound on each query in ClickHouse, and on how many run at once.

- Bounds: every API read (analytics, activities, profiles) runs on `Services.reads`, a view of
  the store whose queries carry ClickHouse settings (max_execution_time, max_memory_usage,
  max_rows_to_read from STREAMTRACK_QUERY_MAX_*). A query over its rows bound is answered
  `422 query_too_large` (narrow it), over its time or memory `503 query_limit_exceeded` with
  Retry-After (see `streamtrack.store.backend.bound_error`). The worker, migrations and
  erasure use the unbounded store: their work must finish.
- Concurrency: `QuerySlots` lets each key run at most STREAMTRACK_QUERY_CONCURRENCY_PER_KEY
  reads at once per replica (the gate answers the next `429` with Retry-After). Reads run on
  a shared thread pool; without this one key's flood of slow analytics held every thread and
  other projects' requests queued behind it. Refusing at once, rather than queueing, keeps a
  flood from holding connections and memory too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from streamtrack.config import Settings
from streamtrack.store import EventStore
from streamtrack.store.backend import Backend, QuerySettings

QUERY_PATHS = ("/analytics/", "/activities")
"""Reads whose concurrency is limited per key (their paths start so)."""
UNBOUNDED_PATHS = frozenset({"/activities/stream"})
"""A live feed is open for as long as its client watches: it has a limit of its own (STREAMTRACK_LIVE_STREAMS_PER_KEY)."""


def is_bounded_read(path: str) -> bool:
    """Whether a request holds one of its key's read slots while it runs."""
    return path.startswith(QUERY_PATHS) and path not in UNBOUNDED_PATHS


def query_bounds(settings: Settings) -> dict[str, int]:
    """The ClickHouse settings of an API read; a bound set to 0 is left out (no bound)."""
    bounds = {
        "max_execution_time": settings.query_max_seconds,
        "max_memory_usage": settings.query_max_memory_bytes,
        "max_rows_to_read": settings.query_max_rows,
    }
    return {name: value for name, value in bounds.items() if value}


class BoundedBackend:
    """A shared backend whose queries carry the API's bounds; statements pass through unchanged."""

    def __init__(self, backend: Backend, bounds: QuerySettings) -> None:
        self._backend = backend
        self._bounds = dict(bounds)
        self.name = backend.name

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._backend.command(sql, params)

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, settings: QuerySettings | None = None
    ) -> list[tuple[Any, ...]]:
        return self._backend.query(sql, params, settings={**self._bounds, **(settings or {})} or None)

    def insert_events(self, database: str, table: str, data: pa.Table, dedup_token: str | None) -> None:
        raise TypeError("the API's bounded view of the store reads; the worker inserts through the shared store")

    def close(self) -> None:
        """The shared backend belongs to the process, not to this view."""


def bounded_store(store: EventStore, settings: Settings) -> EventStore:
    return EventStore(BoundedBackend(store.backend, query_bounds(settings)), store.database, cluster=store.cluster)


class QuerySlots:
    """Reads in flight per key, at most `limit` each (0: no limit). Used on the event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        running = self._running.get(key, 0)
        if running >= self.limit:
            return False
        self._running[key] = running + 1
        return True

    def release(self, key: str) -> None:
        if self.limit <= 0:
            return
        running = self._running.pop(key, 1) - 1
        if running > 0:
            self._running[key] = running

    def __len__(self) -> int:
        return len(self._running)
