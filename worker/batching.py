"""Gathering a batch from the consumer, bounded by count and by time.

ClickHouse wants few, large inserts (10k-100k rows, about one a second); a user wants
their event queryable quickly. A batch closes at `max_events` records or `max_wait`
seconds after its first record, whichever comes first, or when the worker is stopping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
import time

import structlog
from confluent_kafka import Consumer, KafkaError, Message

log = structlog.get_logger(__name__)


def new_batch_id() -> int:
    """Time-ordered 64 bits (microseconds, then 12 random bits): a later insert has a larger id."""
    return (time.time_ns() // 1000) << 12 | random.getrandbits(12)


@dataclasses.dataclass
class Batch:
    messages: list[Message] = dataclasses.field(default_factory=list)
    batch_id: int = dataclasses.field(default_factory=new_batch_id)
    """Written with the batch's rows (`insert_batch`); the same across retries of its insert."""
    stored: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(project_id, event_id) of the events its insert stored."""
    _ranges: dict[tuple[str, int], tuple[int, int]] | None = dataclasses.field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.messages)

    def ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(topic, partition) -> (first, last) offset of its records in the batch.

        One pass over the records, kept until the batch is trimmed: the commit and the dedup
        token both read it, and a batch holds tens of thousands of records.
        """
        if self._ranges is None:
            ranges: dict[tuple[str, int], tuple[int, int]] = {}
            for message in self.messages:
                key, offset = (message.topic(), message.partition()), message.offset()
                span = ranges.get(key)
                if span is None:
                    ranges[key] = (offset, offset)
                elif offset > span[1]:  # records of a partition arrive in order: the usual case
                    ranges[key] = (span[0], offset)
                elif offset < span[0]:
                    ranges[key] = (offset, span[1])
            self._ranges = ranges
        return self._ranges

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> offset to commit: one past the last record of the batch."""
        return {key: last + 1 for key, (_, last) in self.ranges().items()}

    def dedup_token(self) -> str:
        """Same records -> same token, so ClickHouse drops a replayed insert of this batch.

        Like the ClickHouse Kafka sink: topic, partition and offset range of each partition.
        """
        text = ",".join(f"{t}-{p}-{lo}-{hi}" for (t, p), (lo, hi) in sorted(self.ranges().items()))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def drop_partitions(self, revoked: set[tuple[str, int]]) -> None:
        """Forget records of partitions taken away; their new owner reads them again."""
        self.messages = [m for m in self.messages if (m.topic(), m.partition()) not in revoked]
        self._ranges = None


def collect(consumer: Consumer, batch: Batch, max_events: int, max_wait: float, stop: threading.Event) -> Batch:
    """Fill `batch` until it holds max_events, max_wait passed since its first record, or stop is set."""
    first_at: float | None = None
    while len(batch) < max_events and not stop.is_set():
        wait = 0.2 if first_at is None else max(0.0, min(0.2, first_at + max_wait - time.monotonic()))
        for message in consumer.consume(num_messages=max_events - len(batch), timeout=wait):
            error = message.error()
            if error is None:
                batch.messages.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", error=error.str(), fatal=error.fatal())
        if batch.messages and first_at is None:
            first_at = time.monotonic()
        if first_at is not None and time.monotonic() - first_at >= max_wait:
            break
    return batch
