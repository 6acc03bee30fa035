"""The worker loop: collect a batch, store it, then commit — at least once, counted once.

Order matters: dead letters are acknowledged and events inserted before the offsets are
committed, so a crash at any point replays the batch rather than losing it. The replay is
harmless: the worker drops the copies it finds (`dedup`), an insert retried after an unknown
outcome carries the same deduplication token, and a batch whose commit failed is undone
where another insert stored it too (`fencing`).
While ClickHouse is down the worker retries the same batch with backoff and commits nothing;
meanwhile it pauses its partitions but keeps polling, so the group does not think it dead
and rebalance (librdkafka's max.poll.interval.ms), and it resumes once the batch is stored
(`worker.group`: the consumer-group side the archive writer shares).

Each batch runs in a consumer span linked to the producer spans of its records (their
`traceparent` header), with the ClickHouse insert as a child span.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections import Counter

import structlog
from confluent_kafka import KafkaException, TopicPartition
from opentelemetry.trace import SpanKind

from streamtrack.auth.bots import BotFilter, screen
from streamtrack.auth.privacy import anonymize_events
from streamtrack.config import Settings
from streamtrack.errors import RetryableError
from streamtrack.events import Event
from streamtrack.store import EventStore
from streamtrack.telemetry import metrics
from streamtrack.telemetry.tracing import (
    links_to,
    parent_of_batch,
    span_context_from_headers,
    tracer,
    tracing_enabled,
)
from streamtrack.worker.batching import Batch
from streamtrack.worker.deadletter import DeadLetters
from streamtrack.worker.fencing import FencedBatches
from streamtrack.worker.group import GroupMember
from streamtrack.worker.records import REPLAY_HEADER, Rejected, decode_records
from streamtrack.worker.sink import Sink

log = structlog.get_logger(__name__)


def tune_gc() -> None:
    """Collect garbage less often in a worker process: each batch allocates tens of thousands of
    containers (events and their properties), and with the default thresholds (700 allocations)
    the collector ran so often that decoding a record cost several times more (bench/worker.py).
    Long-lived start-up objects are frozen out of every collection."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


@dataclasses.dataclass
class WorkerStats:
    batches: int = 0
    inserted: int = 0
    duplicates: int = 0
    """Events dropped because their event_id was stored already (replays, client retries)."""
    dead_lettered: int = 0
    retries: int = 0
    committed: dict[int, int] = dataclasses.field(default_factory=dict)
    """partition -> next offset to read, as last committed by this worker."""


class Worker:
    """One consumer in the group. `run()` blocks until `stop()` (from any thread or a signal)."""

    def __init__(self, settings: Settings, store: EventStore) -> None:
        self.settings = settings
        self.store = store
        self.stats = WorkerStats()
        self._member = GroupMember(
            settings, group=settings.consumer_group, client_id="streamtrack-worker", lag=metrics.CONSUMER_LAG,
            paused=metrics.CONSUMPTION_PAUSED, on_assigned=self._on_assigned,
        )
        self.assigned = self._member.assigned
        """Set once the group gave this worker its partitions (the first join takes seconds)."""
        self._dead_letters = DeadLetters(settings)
        self._bots = BotFilter(settings.bot_events_per_second)
        self._sink = Sink(store, cache_events=settings.dedup_cache_events, window_ms=settings.dedup_window_ms)
        self._fenced = FencedBatches()

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit, and leave the group."""
        self._member.stop_requested.set()

    @property
    def stopping(self) -> bool:
        return self._member.stop_requested.is_set()

    @property
    def paused(self) -> bool:
        """Consumption is paused while a batch is retried (ClickHouse down)."""
        return self._member.paused

    def healthy(self, within: float = 120.0) -> bool:
        """The loop still serves the consumer (for `/healthz`): False means restart me."""
        return time.monotonic() - self._member.polled_at < within

    def run(self) -> WorkerStats:
        self._member.subscribe(self.settings.topic)
        log.info("worker started", topic=self.settings.topic, group=self.settings.consumer_group)
        try:
            while not self.stopping:
                batch = self._member.next_batch(self.settings.batch_max_events, self.settings.batch_max_wait_ms / 1000)
                if batch.messages:
                    self._process(batch)
                self._fenced.resolve(self._member.consumer, self.store)
        finally:
            self._member.close()
            self._dead_letters.close()
            log.info("worker stopped", **dataclasses.asdict(self.stats))
        return self.stats

    def _process(self, batch: Batch) -> None:
        links = links_to(span_context_from_headers(m.headers()) for m in batch.messages) if tracing_enabled() else []
        with tracer().start_as_current_span(
            f"process {self.settings.topic}", context=parent_of_batch(links), kind=SpanKind.CONSUMER, links=links,
            attributes={"messaging.system": "kafka", "messaging.destination.name": self.settings.topic,
                        "messaging.operation.type": "process", "messaging.batch.message_count": len(batch),
                        "messaging.consumer.group.name": self.settings.consumer_group},
        ):
            bots = 0

            def attempt() -> tuple[int, list[Event], list[Rejected]]:
                nonlocal bots
                # Decoded at each attempt: a rebalance during a retry may have trimmed the batch.
                events, rejected = decode_records(batch.messages, self.settings.max_record_bytes)
                events, bots = screen(self._bots, events, self.settings.bot_action)
                if self.settings.anonymize_ip:
                    events = anonymize_events(events)
                return self._store(batch, events, rejected), events, rejected

            outcome = self._member.retrying(attempt, self._on_store_failure)
            if outcome is None:
                return  # stopping before the batch was stored: it is replayed by whoever reads next
            inserted, events, rejected = outcome
            self._commit(batch)
        if bots:
            metrics.BOT_EVENTS.labels("dropped" if self.settings.bot_action == "drop" else "flagged").inc(bots)
        metrics.BATCHES.inc()
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.INSERTED_ROWS.inc(inserted)
        metrics.DUPLICATES.inc(len(events) - inserted)
        for reason, count in Counter(item.reason for item in rejected).items():
            metrics.DEAD_LETTERS.labels(reason).inc(count)
        self.stats.batches += 1
        self.stats.inserted += inserted
        self.stats.duplicates += len(events) - inserted
        self.stats.dead_lettered += len(rejected)  # last: who waits on stats sees the metrics moved

    def _store(self, batch: Batch, events: list[Event], rejected: list[Rejected]) -> int:
        """Dead letters first, then the new events; returns how many events were inserted."""
        if rejected:
            self._dead_letters.send(rejected)
            for item in rejected:
                log.warning(
                    "dead letter", reason=item.reason, detail=item.detail[:200],
                    partition=item.message.partition(), offset=item.message.offset(),
                )
        replayed = any(key == REPLAY_HEADER for m in batch.messages for key, _ in (m.headers() or ()))
        fresh = self._sink.write(events, dedup_token=batch.dedup_token(), batch_id=batch.batch_id,
                                 trust_cache=not replayed)
        batch.stored = [(e.project_id, e.event_id) for e in fresh]
        return len(fresh)

    def _on_store_failure(self, error: RetryableError, retry_in: float) -> None:
        self.stats.retries += 1
        metrics.STORE_RETRIES.inc()
        log.warning("batch not stored; consumption paused, retrying", error=error.message, retry_in=retry_in)

    def _commit(self, batch: Batch) -> None:
        try:
            offsets = self._member.commit(batch)
        except KafkaException as exc:
            # Typically a rebalance took the partitions: the new owner replays them; if it stored
            # them again, this batch's rows are undone once the group commits past them (`fencing`).
            log.warning("commit failed; the batch is a suspect until the group commits past it", error=str(exc))
            for (topic, partition), offset in batch.next_offsets().items():
                self._fenced.add(topic, partition, offset, batch.batch_id, batch.stored)
            return
        for tp in offsets:
            self.stats.committed[tp.partition] = tp.offset

    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        # The previous owners' inserts are visible now (they gave the partitions up after their
        # last commit): what the dedup cache knows starts again from what ClickHouse holds.
        self._sink.warm()
