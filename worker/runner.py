"""The worker loop: collect a batch, store it, then commit — at least once, counted once.

Order matters: dead letters are acknowledged and events inserted before the offsets are
committed, so a crash at any point replays the batch rather than losing it. The replay is
harmless: the worker drops the copies it finds (`dedup`), an insert retried after an unknown
outcome carries the same deduplication token, and a batch whose commit failed is undone
where another insert stored it too (`fencing`).
While ClickHouse is down the worker retries the same batch with backoff and commits nothing;
meanwhile it pauses its partitions but keeps polling, so the group does not think it dead
and rebalance (librdkafka's max.poll.interval.ms), and it resumes once the batch is stored.

Each batch runs in a consumer span linked to the producer spans of its records (their
`traceparent` header), with the ClickHouse insert as a child span.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from opentelemetry.trace import SpanKind

from streamtrack.auth.bots import BotFilter, screen
from streamtrack.auth.privacy import anonymize_events
from streamtrack.config import Settings
from streamtrack.errors import RetryableError
from streamtrack.events import Event
from streamtrack.kafka.admin import client_config
from streamtrack.store import EventStore
from streamtrack.telemetry import metrics
from streamtrack.telemetry.tracing import (
    links_to,
    parent_of_batch,
    span_context_from_headers,
    tracer,
    tracing_enabled,
)
from streamtrack.worker.batching import Batch, collect
from streamtrack.worker.deadletter import DeadLetters
from streamtrack.worker.fencing import FencedBatches
from streamtrack.worker.records import REPLAY_HEADER, Rejected, decode_records
from streamtrack.worker.sink import Sink

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_BACKOFF = 5.0  # seconds; also the longest the worker stays idle after ClickHouse is back
STATS_INTERVAL_MS = 5000


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
        self._stop = threading.Event()
        self.assigned = threading.Event()
        """Set once the group gave this worker its partitions (the first join takes seconds)."""
        self._batch = Batch()
        self._paused = False
        self.polled_at = time.monotonic()
        """When the consumer was last served (librdkafka's statistics arrive only while we poll)."""
        self._wake = threading.Event()
        """Ends the current `collect`: set by stop()."""
        self._consumer = self._new_consumer()
        self._dead_letters = DeadLetters(settings)
        self._bots = BotFilter(settings.bot_events_per_second)
        self._sink = Sink(store, cache_events=settings.dedup_cache_events, window_ms=settings.dedup_window_ms)
        self._fenced = FencedBatches()

    def _new_consumer(self) -> Consumer:
        settings = self.settings
        return Consumer(
            client_config(
                settings,
                **{
                    "group.id": settings.consumer_group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": settings.session_timeout_ms,
                    "heartbeat.interval.ms": max(settings.session_timeout_ms // 3, 100),
                    "partition.assignment.strategy": "cooperative-sticky",
                    "client.id": "streamtrack-worker",
                    "statistics.interval.ms": STATS_INTERVAL_MS,  # consumer lag, for the metric
                    "stats_cb": self._on_stats,
                },
            )
        )

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit, and leave the group."""
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def healthy(self, within: float = 120.0) -> bool:
        """The loop still serves the consumer (for `/healthz`): False means restart me."""
        return time.monotonic() - self.polled_at < within

    def run(self) -> WorkerStats:
        self._subscribe()
        log.info("worker started", topic=self.settings.topic, group=self.settings.consumer_group)
        try:
            while not self._stop.is_set():
                self._batch = Batch()  # the revoke callback trims this one while it fills
                collect(
                    self._consumer,
                    self._batch,
                    self.settings.batch_max_events,
                    self.settings.batch_max_wait_ms / 1000,
                    self._wake,
                )
                if self._batch.messages:
                    self._process(self._batch)
                self._fenced.resolve(self._consumer, self.store)
        finally:
            self._consumer.close()  # leaves the group at once, so partitions move without waiting
            self._dead_letters.close()
            log.info("worker stopped", **dataclasses.asdict(self.stats))
        return self.stats

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            [self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

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

            outcome = self._with_retries(attempt)
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

    def _with_retries(self, action: Callable[[], T]) -> T | None:
        """Run `action` until it succeeds (its result) or the worker is stopped (None).

        After a failure consumption is paused until the action succeeds: the batch in hand
        is retried, nothing new is read, nothing is committed.
        """
        backoff = 0.2
        try:
            while True:
                try:
                    return action()
                except RetryableError as exc:
                    self.stats.retries += 1
                    metrics.STORE_RETRIES.inc()
                    log.warning("batch not stored; consumption paused, retrying", error=exc.message, retry_in=backoff)
                self._pause()
                if self._wait_polling(backoff):
                    return None
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self._resume()

    def _pause(self) -> None:
        if not self._paused:
            self._consumer.pause(self._consumer.assignment() or [])
            self._paused = True
            metrics.CONSUMPTION_PAUSED.set(1)

    def _resume(self) -> None:
        if self._paused:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
            metrics.CONSUMPTION_PAUSED.set(0)
            log.info("consumption resumed")

    def _wait_polling(self, seconds: float) -> bool:
        """Wait `seconds` while serving the group (rebalances, liveness); True if stopping.

        Records can still arrive from partitions assigned during the pause: those are
        rewound (seek back) and paused too, to be read once the store is back.
        """
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            arrived = [m for m in self._consumer.consume(num_messages=1000, timeout=min(left, 0.5)) if m.error() is None]
            if arrived:
                self._rewind(arrived)
        return True

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic(), message.partition())
            first[key] = min(first.get(key, message.offset()), message.offset())
        partitions = [TopicPartition(topic, partition, offset) for (topic, partition), offset in first.items()]
        self._consumer.pause(partitions)
        for tp in partitions:
            self._consumer.seek(tp)

    def _commit(self, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets().items()]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions: the new owner replays them; if it stored
            # them again, this batch's rows are undone once the group commits past them (`fencing`).
            log.warning("commit failed; the batch is a suspect until the group commits past it", error=str(exc))
            for tp in offsets:
                self._fenced.add(tp.topic, tp.partition, tp.offset, batch.batch_id, batch.stored)
            return
        for tp in offsets:
            self.stats.committed[tp.partition] = tp.offset

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics (every STATS_INTERVAL_MS while polling): lag of our partitions."""
        self.polled_at = time.monotonic()
        try:
            topic = json.loads(stats_json).get("topics", {}).get(self.settings.topic, {})
        except ValueError:
            return
        mine = [p for p in topic.get("partitions", {}).values()
                if p.get("partition", -1) >= 0 and p.get("fetch_state") not in (None, "none", "stopped")]
        metrics.CONSUMER_LAG.set(sum(max(p.get("consumer_lag", -1), 0) for p in mine))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each new partition at the group's committed offset, read from the broker now.

        librdkafka can otherwise resume a partition it owned before at its own last position,
        which is wrong when the broker lost its log (the in-memory local broker after a
        restart): the new log starts at 0 again and the records below that position would be
        skipped. Without a commit, the partition starts at its beginning (auto.offset.reset).
        """
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            log.warning("committed offsets unknown; librdkafka picks the start positions", error=str(exc),
                        partitions=sorted(tp.partition for tp in partitions))
        else:
            for tp in committed:
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
            consumer.incremental_assign(committed)
            log.info("partitions assigned", starts={tp.partition: tp.offset for tp in committed})
        # The previous owners' inserts are visible now (they gave the partitions up after their
        # last commit): what the dedup cache knows starts again from what ClickHouse holds.
        self._sink.warm()
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        before = len(self._batch)
        self._batch.drop_partitions(revoked)
        log.info("partitions revoked", partitions=sorted(p for _, p in revoked), dropped=before - len(self._batch))
