"""The worker's write path without Kafka: events in, each stored once, erasures honoured.

`Worker` feeds it decoded batches; tests and benchmarks call it directly. Order: drop copies
(`dedup`), drop erased ids (`erasures`), store identity calls, insert, remember what was
stored, then undo what an erasure that raced the insert covers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from opentelemetry.trace import SpanKind

from streamtrack.events import Event
from streamtrack.identities import identity_records
from streamtrack.store import EventStore
from streamtrack.store.identities import insert_identities
from streamtrack.telemetry import metrics
from streamtrack.telemetry.tracing import tracer
from streamtrack.timestamps import now_ms
from streamtrack.worker.dedup import RecentIds, new_events, warm
from streamtrack.worker.erasures import Tombstones

log = structlog.get_logger(__name__)


class Sink:
    def __init__(self, store: EventStore, *, cache_events: int, window_ms: int) -> None:
        self.store = store
        self.recent = RecentIds(cache_events)
        self.tombstones = Tombstones(store)
        self._window_ms = window_ms

    def warm(self) -> None:
        """Read the tombstones, then start the id cache again from what ClickHouse holds (on every
        partition assignment)."""
        self.tombstones.refresh()
        warm(self.recent, self.store, now_ms=now_ms(), window_ms=self._window_ms)

    def write(
        self, events: Sequence[Event], *, dedup_token: str | None, batch_id: int, trust_cache: bool = True
    ) -> list[Event]:
        """Store the events of a batch that are new; returns those stored (`trust_cache`: see `new_events`).

        Tombstones are read before (the id cache then starts again if there were new ones, so
        it never remembers an erased event) and after the insert (`erasures`). Erased ids go
        first, then copies: so whether a copy received after an erasure is stored never
        depends on what came with it in the batch.
        """
        if self.tombstones.refresh():
            self.warm()
        events = self.tombstones.screen(events)
        fresh, lookups = new_events(events, self.recent, self.store, trust_cache=trust_cache) if events else ([], 0)
        metrics.DEDUP_LOOKUPS.inc(lookups)
        if fresh:
            self._insert(fresh, dedup_token, batch_id)
        if self.tombstones.refresh():
            self.warm()
        return fresh

    def _insert(self, fresh: list[Event], dedup_token: str | None, batch_id: int) -> None:
        # Identity records first: if the events' insert then fails, the replay re-derives them.
        insert_identities(self.store, *identity_records(fresh), dedup_token=dedup_token)
        started = time.perf_counter()
        with tracer().start_as_current_span(
            f"INSERT {self.store.database}.events", kind=SpanKind.CLIENT,
            attributes={"db.system.name": "clickhouse", "db.namespace": self.store.database,
                        "db.operation.name": "INSERT", "db.operation.batch.size": len(fresh)},
        ):
            self.store.insert(fresh, dedup_token=dedup_token, batch=batch_id)
        seconds = time.perf_counter() - started
        self.recent.add(fresh)
        metrics.INSERT_LATENCY.observe(seconds)
        log.debug("batch inserted", events=len(fresh), seconds=round(seconds, 4))
