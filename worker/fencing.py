"""The undo of a fenced insert: a worker whose commit failed may have stored a batch that the
partition's next owner stores again.

A commit fails when the group took the partitions away while the batch was being stored
(the worker was paused, slow, or cut off longer than its session). The next owner then reads
those records again; if it looked for them before this insert was visible, it stores them
too. So every batch whose commit failed is kept as a suspect until the group's committed
offset for its partition passes the batch's end — by then whoever stores those records has
stored them — and this worker then deletes its own rows of the events that a later insert
(a larger batch id) stored too. Rows that no other insert stored stay: nothing is lost,
whatever happened; and nothing is deleted twice, since only the earlier copy is ever removed.
"""

from __future__ import annotations

import dataclasses

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamtrack.store import EventStore

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class Suspect:
    topic: str
    partition: int
    end_offset: int
    """The offset after the batch's last record of this partition."""
    batch: int
    keys: list[tuple[str, str]]
    """(project_id, event_id) of the events the batch stored."""


class FencedBatches:
    """Batches whose commit failed, until their fate is known (`resolve`)."""

    def __init__(self) -> None:
        self.suspects: list[Suspect] = []

    def add(self, topic: str, partition: int, end_offset: int, batch: int, keys: list[tuple[str, str]]) -> None:
        if keys:
            self.suspects.append(Suspect(topic, partition, end_offset, batch, keys))

    def resolve(self, consumer: Consumer, store: EventStore) -> int:
        """Undo the copies of the suspects whose records the group has committed past; returns how many resolved."""
        if not self.suspects:
            return 0
        try:
            committed = consumer.committed(
                [TopicPartition(s.topic, s.partition) for s in self.suspects], timeout=5
            )
        except KafkaException as exc:
            log.warning("committed offsets unknown; fenced batches wait", error=str(exc), suspects=len(self.suspects))
            return 0
        done = {(tp.topic, tp.partition): tp.offset for tp in committed}
        resolved, waiting = [], []
        for suspect in self.suspects:
            (resolved if done.get((suspect.topic, suspect.partition), -1) >= suspect.end_offset else waiting).append(suspect)
        for suspect in resolved:
            store.delete_batch_copies(suspect.batch, suspect.keys)
            log.info("fenced batch resolved", partition=suspect.partition, events=len(suspect.keys))
        self.suspects = waiting
        return len(resolved)
