"""The worker loop: collect a batch, store it, then commit — at least once, counted once.

Order matters: dead letters are acknowledged and events inserted before the offsets are
committed, so a crash at any point replays the batch rather than losing it. The replay is
harmless: the insert carries a deduplication token built from the batch's offsets, the
table is a ReplacingMergeTree keyed on the event, and queries count each event_id once.
While ClickHouse is down the worker retries the same batch with backoff and commits nothing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamtrack.config import Settings
from streamtrack.errors import RetryableError
from streamtrack.events import Event
from streamtrack.kafka.admin import client_config
from streamtrack.store import EventStore
from streamtrack.worker.batching import Batch, collect
from streamtrack.worker.deadletter import DeadLetters
from streamtrack.worker.dedup import new_events
from streamtrack.worker.records import Rejected, decode_records

log = structlog.get_logger(__name__)

MAX_BACKOFF = 30.0


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
        self._consumer = Consumer(
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
                },
            )
        )
        self._dead_letters = DeadLetters(settings)

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit, and leave the group."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> WorkerStats:
        self._consumer.subscribe(
            [self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        log.info("worker started", topic=self.settings.topic, group=self.settings.consumer_group)
        try:
            while not self._stop.is_set():
                self._batch = Batch()  # the revoke callback trims this one while it fills
                collect(
                    self._consumer,
                    self._batch,
                    self.settings.batch_max_events,
                    self.settings.batch_max_wait_ms / 1000,
                    self._stop,
                )
                if self._batch.messages:
                    self._process(self._batch)
        finally:
            self._consumer.close()  # leaves the group at once, so partitions move without waiting
            self._dead_letters.close()
            log.info("worker stopped", **dataclasses.asdict(self.stats))
        return self.stats

    def _process(self, batch: Batch) -> None:
        events, rejected = decode_records(batch.messages)
        inserted = self._with_retries(lambda: self._store(batch, events, rejected))
        if inserted is None:
            return  # stopping before the batch was stored: it is replayed by whoever reads next
        self._commit(batch)
        self.stats.batches += 1
        self.stats.inserted += inserted
        self.stats.duplicates += len(events) - inserted
        self.stats.dead_lettered += len(rejected)

    def _store(self, batch: Batch, events: list[Event], rejected: list[Rejected]) -> int:
        """Dead letters first, then the new events; returns how many events were inserted."""
        if rejected:
            self._dead_letters.send(rejected)
            for item in rejected:
                log.warning(
                    "dead letter", reason=item.reason, detail=item.detail[:200],
                    partition=item.message.partition(), offset=item.message.offset(),
                )
        fresh = new_events(events, self.store) if events else []
        if fresh:
            started = time.perf_counter()
            self.store.insert(fresh, dedup_token=batch.dedup_token())
            log.debug("batch inserted", events=len(fresh), seconds=round(time.perf_counter() - started, 4))
        return len(fresh)

    def _with_retries(self, action: Callable[[], int]) -> int | None:
        """Run `action` until it succeeds (its result) or the worker is stopped (None)."""
        backoff = 0.2
        while True:
            try:
                return action()
            except RetryableError as exc:
                self.stats.retries += 1
                log.warning("batch not stored, retrying", error=exc.message, retry_in=backoff)
            if self._stop.wait(backoff):
                return None
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _commit(self, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets().items()]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions: the new owner replays, dedup absorbs it.
            log.warning("commit failed; the batch will be replayed", error=str(exc))
            return
        for tp in offsets:
            self.stats.committed[tp.partition] = tp.offset

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.set()
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        before = len(self._batch)
        self._batch.drop_partitions(revoked)
        log.info("partitions revoked", partitions=sorted(p for _, p in revoked), dropped=before - len(self._batch))
