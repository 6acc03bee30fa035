"""One member of a consumer group that stores what it reads in batches: the part the worker, the
archive writer and the dead-letter loader share (each brings its own store: the events table,
the object store, the dead_letters table).

- **Start positions**: each assigned partition starts at the group's committed offset, read from
  the broker at assignment. librdkafka could otherwise resume a partition it owned before at its
  own last position, which is wrong when the broker lost its log (the in-memory local broker
  after a restart): the records below that position would be skipped. Without a commit a
  partition starts at its beginning (auto.offset.reset).
- **Rebalances**: a revoked partition's records leave the batch being filled or retried; its
  new owner reads them again from the committed offset.
- **Store down**: the batch in hand is retried with backoff (`retrying`) while consumption is
  paused but still polled, so the group does not think the member dead and rebalance
  (librdkafka's max.poll.interval.ms); records of partitions assigned meanwhile are rewound
  and paused too, and everything resumes once the batch is stored.
- **Commits** are synchronous and come only after the batch is stored (`commit`).
- **Lag**: librdkafka's statistics of the member's partitions feed a gauge.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from prometheus_client import Gauge

from streamtrack.config import Settings
from streamtrack.errors import RetryableError
from streamtrack.kafka.admin import client_config
from streamtrack.worker.batching import Batch, collect

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_BACKOFF = 5.0  # seconds; also the longest a member stays idle after its store is back
STATS_INTERVAL_MS = 5000


class GroupMember:
    def __init__(
        self, settings: Settings, *, group: str, client_id: str, lag: Gauge, paused: Gauge | None = None,
        on_assigned: Callable[[list[TopicPartition]], None] = lambda partitions: None,
    ) -> None:
        """`lag` gets the consumer lag of the member's partitions, `paused` 1 while consumption is
        paused; `on_assigned` runs after each assignment (its partitions), inside the rebalance."""
        self.settings = settings
        self.name = client_id
        self.batch = Batch()
        """The batch being filled or stored: a revoke trims it."""
        self.assigned = threading.Event()
        """Set once the group gave this member partitions (the first join takes seconds)."""
        self.polled_at = time.monotonic()
        """When the consumer was last served (librdkafka's statistics arrive only while it polls)."""
        self.stop_requested = threading.Event()
        self._lag, self._paused_gauge, self._on_assigned = lag, paused, on_assigned
        self._paused = False
        self._topic = ""
        self.consumer = Consumer(client_config(settings, **{
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": max(settings.session_timeout_ms // 3, 100),
            "partition.assignment.strategy": "cooperative-sticky",
            "client.id": client_id,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._on_stats,
        }))

    @property
    def paused(self) -> bool:
        """Consumption is paused: a batch is being retried."""
        return self._paused

    def subscribe(self, topic: str) -> None:
        self._topic = topic
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)

    def next_batch(self, max_events: int, max_wait_s: float) -> Batch:
        """A new batch, filled until `max_events`, `max_wait_s` after its first record, or a stop."""
        self.batch = Batch()
        return collect(self.consumer, self.batch, max_events, max_wait_s, self.stop_requested)

    def retrying(self, action: Callable[[], T], on_failure: Callable[[RetryableError, float], None]) -> T | None:
        """Run `action` until it succeeds (its result) or a stop is requested (None).

        After each failure `on_failure(error, seconds until the next try)` runs, and consumption
        stays paused until the action succeeds: the batch in hand is retried, nothing new is
        read, nothing is committed.
        """
        backoff = 0.2
        try:
            while True:
                try:
                    return action()
                except RetryableError as exc:
                    on_failure(exc, backoff)
                self._pause()
                if self._wait_polling(backoff):
                    return None
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self._resume()

    def commit(self, batch: Batch) -> list[TopicPartition]:
        """Commit one past the batch's last record of each partition; raises KafkaException
        (typically: a rebalance took the partitions, and their new owner reads them again)."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets().items()]
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        return offsets

    def close(self) -> None:
        """Leave the group at once, so partitions move without waiting for the session timeout."""
        self.consumer.close()

    def _pause(self) -> None:
        if not self._paused:
            self.consumer.pause(self.consumer.assignment() or [])
            self._paused = True
            if self._paused_gauge is not None:
                self._paused_gauge.set(1)

    def _resume(self) -> None:
        if self._paused:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
            if self._paused_gauge is not None:
                self._paused_gauge.set(0)
            log.info("consumption resumed", member=self.name)

    def _wait_polling(self, seconds: float) -> bool:
        """Wait `seconds` while serving the group (rebalances, liveness); True if stopping."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            arrived = [m for m in self.consumer.consume(num_messages=1000, timeout=min(left, 0.5)) if m.error() is None]
            if arrived:
                self._rewind(arrived)
        return True

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic(), message.partition())
            first[key] = min(first.get(key, message.offset()), message.offset())
        partitions = [TopicPartition(topic, partition, offset) for (topic, partition), offset in first.items()]
        self.consumer.pause(partitions)
        for tp in partitions:
            self.consumer.seek(tp)

    def _on_stats(self, stats_json: str) -> None:
        self.polled_at = time.monotonic()
        try:
            topic = json.loads(stats_json).get("topics", {}).get(self._topic, {})
        except ValueError:
            return
        mine = [p for p in topic.get("partitions", {}).values()
                if p.get("partition", -1) >= 0 and p.get("fetch_state") not in (None, "none", "stopped")]
        self._lag.set(sum(max(p.get("consumer_lag", -1), 0) for p in mine))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            log.warning("committed offsets unknown; librdkafka picks the start positions", error=str(exc),
                        member=self.name, partitions=sorted(tp.partition for tp in partitions))
            committed = partitions
        else:
            for tp in committed:
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
            consumer.incremental_assign(committed)
            log.info("partitions assigned", member=self.name, starts={tp.partition: tp.offset for tp in committed})
        self._on_assigned(committed)
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        before = len(self.batch)
        self.batch.drop_partitions(revoked)
        log.info("partitions revoked", member=self.name, partitions=sorted(p for _, p in revoked),
                 dropped=before - len(self.batch))
