"""The archive writer: every accepted event also lands in the object store, at least once,
in objects that never overlap.

It is a consumer group of its own (STREAMTRACK_ARCHIVE_CONSUMER_GROUP) on the events topic,
so an object store outage only grows the archive's lag: the workers loading ClickHouse
never wait for it. Per batch: the records of each partition become one object per
(project, hour) (`layout`), preceded by a manifest naming them; offsets are committed only
after every object is uploaded. While the store is down the same batch is retried with
backoff (same names, same bytes), its partitions paused, the group still served.

A batch that was uploaded in part, or whole but not committed (a crash, a lost partition),
is redone by whoever reads the partition next, from the committed offset: it may end at
another offset, so before writing, the first batch of each newly assigned partition deletes
what the manifests of earlier attempts at the same first offset name and it does not
rewrite. So the archive holds each record once, in one object.
Records the worker would refuse (`worker.records.check_value`) are dead letters, not events:
they are not archived (a dead letter replayed later is archived then). Nor are the records
of `streamtrack replay` from the archive (header `streamtrack-replay: archive`): they are in it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from streamtrack.archive import layout
from streamtrack.archive.objects import ObjectStore
from streamtrack.config import Settings
from streamtrack.errors import RetryableError
from streamtrack.events import Event
from streamtrack.kafka.admin import client_config
from streamtrack.telemetry import metrics
from streamtrack.worker.batching import Batch, collect
from streamtrack.worker.records import REPLAY_HEADER, check_value

log = structlog.get_logger(__name__)
T = TypeVar("T")
MAX_BACKOFF = 5.0
STATS_INTERVAL_MS = 5000
ARCHIVE_REPLAY = b"archive"
"""The `streamtrack-replay` header's value on records replayed from the archive (`streamtrack.replay`)."""


@dataclasses.dataclass
class ArchiveStats:
    batches: int = 0
    objects: int = 0
    events: int = 0
    bytes: int = 0
    skipped: int = 0
    """Records that are not events (dead letters of the worker)."""
    retries: int = 0
    removed: int = 0
    """Objects of an earlier, unfinished attempt deleted before a batch was written again."""
    committed: dict[int, int] = dataclasses.field(default_factory=dict)


def _from_archive(message: Message) -> bool:
    return any(key == REPLAY_HEADER and value == ARCHIVE_REPLAY for key, value in message.headers() or ())


class ArchiveWriter:
    """One member of the archive's group. `run()` blocks until `stop()`."""

    def __init__(self, settings: Settings, objects: ObjectStore | None = None) -> None:
        self.settings = settings
        self.objects = objects or ObjectStore(settings)
        self.prefix = settings.archive_prefix
        self.stats = ArchiveStats()
        self.assigned = threading.Event()
        self._stop = threading.Event()
        self._batch = Batch()
        self._paused = False
        self._fresh: set[tuple[str, int]] = set()
        """Partitions assigned since their last batch: their first batch checks earlier attempts."""
        self._consumer = Consumer(client_config(settings, **{
            "group.id": settings.archive_consumer_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": max(settings.session_timeout_ms // 3, 100),
            "partition.assignment.strategy": "cooperative-sticky",
            "client.id": "streamtrack-archive",
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._on_stats,
        }))

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> ArchiveStats:
        if not self._with_retries(lambda: self.objects.ensure_bucket() or True, "bucket not ready"):
            self._consumer.close()
            return self.stats
        self._consumer.subscribe([self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_revoke)
        log.info("archive writer started", topic=self.settings.topic, bucket=self.objects.bucket,
                 endpoint=self.objects.endpoint, group=self.settings.archive_consumer_group)
        try:
            while not self._stop.is_set():
                self._batch = Batch()
                collect(self._consumer, self._batch, self.settings.archive_batch_max_events,
                        self.settings.archive_batch_max_wait_ms / 1000, self._stop)
                if self._batch.messages:
                    self._process(self._batch)
        finally:
            self._consumer.close()
            log.info("archive writer stopped", **{k: v for k, v in dataclasses.asdict(self.stats).items()
                                                    if k != "committed"})
        return self.stats

    def _process(self, batch: Batch) -> None:
        written = self._with_retries(lambda: self._write(batch), "batch not archived")
        if written is None:
            return  # stopping: whoever reads the partitions next writes the batch again
        self._commit(batch)
        objects, events, size, skipped = written
        self.stats.batches += 1
        self.stats.objects += objects
        self.stats.bytes += size
        self.stats.skipped += skipped
        self.stats.events += events  # last: who waits on stats sees the rest updated
        metrics.ARCHIVED_EVENTS.inc(events)
        metrics.ARCHIVED_OBJECTS.inc(objects)
        metrics.ARCHIVED_BYTES.inc(size)

    def _write(self, batch: Batch) -> tuple[int, int, int, int]:
        """Upload the batch's objects (manifest first); returns (objects, events, bytes, skipped)."""
        by_partition: dict[tuple[str, int], list[Message]] = {}
        for message in batch.messages:  # decoded at each attempt: a rebalance may have trimmed the batch
            by_partition.setdefault((message.topic(), message.partition()), []).append(message)
        objects = events = size = skipped = 0
        for (topic, partition), messages in sorted(by_partition.items()):
            messages.sort(key=lambda m: m.offset())
            first, last = messages[0].offset(), messages[-1].offset()
            groups: dict[tuple[str, str, int], list[Event]] = {}
            for message in messages:
                if _from_archive(message):
                    continue
                checked = check_value(message.value(), self.settings.max_record_bytes)
                if not isinstance(checked, Event):
                    skipped += 1
                    continue
                date, hour = layout.hour_of(checked.received_at)
                groups.setdefault((checked.project_id, date, hour), []).append(checked)
            plan = {
                layout.object_name(self.prefix, project, date, hour, topic, partition, first, last): layout.encode_objects(group)
                for (project, date, hour), group in groups.items()
            }
            manifest = layout.manifest_name(self.prefix, topic, partition, first, last)
            if (topic, partition) in self._fresh:
                self._remove_earlier_attempts(topic, partition, first, manifest, set(plan))
            counts = {name: len(group) for name, group in zip(plan, groups.values(), strict=True)}
            self.objects.put(manifest, json.dumps({"first": first, "last": last, "objects": counts}).encode(),
                             "application/json")
            for name, body in plan.items():
                self.objects.put(name, body, "application/gzip")
                size += len(body)
            self._fresh.discard((topic, partition))
            objects += len(plan)
            events += sum(counts.values())
        return objects, events, size, skipped

    def _remove_earlier_attempts(self, topic: str, partition: int, first: int, keep: str, planned: set[str]) -> None:
        for name, _ in list(self.objects.list(layout.manifest_prefix(self.prefix, topic, partition, first))):
            if name == keep:
                continue  # the same range: its objects are rewritten under the same names
            stale = [n for n in json.loads(self.objects.get(name))["objects"] if n not in planned]
            if stale:
                self.objects.delete(stale)
                self.stats.removed += len(stale)
                log.info("archive: objects of an unfinished attempt removed", manifest=name, objects=len(stale))
            self.objects.delete([name])

    def _with_retries(self, action: Callable[[], T], what: str) -> T | None:
        """`action`'s result, retried with backoff while the object store fails; None if stopped first."""
        backoff = 0.2
        try:
            while True:
                try:
                    return action()
                except RetryableError as exc:
                    self.stats.retries += 1
                    metrics.ARCHIVE_RETRIES.inc()
                    log.warning(f"archive: {what}; consumption paused, retrying", error=exc.message, retry_in=backoff)
                self._pause()
                if self._wait_polling(backoff):
                    return None
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            self._resume()

    def _pause(self) -> None:
        if not self._paused and self._consumer.assignment():
            self._consumer.pause(self._consumer.assignment())
            self._paused = True

    def _resume(self) -> None:
        if self._paused:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False

    def _wait_polling(self, seconds: float) -> bool:
        """Serve the group for `seconds` (records of partitions assigned meanwhile are rewound); True if stopping."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            arrived = [m for m in self._consumer.consume(num_messages=1000, timeout=min(left, 0.5)) if m.error() is None]
            first: dict[tuple[str, int], int] = {}
            for m in arrived:
                key = (m.topic(), m.partition())
                first[key] = min(first.get(key, m.offset()), m.offset())
            rewind = [TopicPartition(t, p, o) for (t, p), o in first.items()]
            if rewind:
                self._consumer.pause(rewind)
                for tp in rewind:
                    self._consumer.seek(tp)
        return True

    def _commit(self, batch: Batch) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets().items()]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("archive: commit failed; the partitions' next owner writes the batch again", error=str(exc))
            return
        for tp in offsets:
            self.stats.committed[tp.partition] = tp.offset

    def _on_stats(self, stats_json: str) -> None:
        try:
            topic = json.loads(stats_json).get("topics", {}).get(self.settings.topic, {})
        except ValueError:
            return
        mine = [p for p in topic.get("partitions", {}).values()
                if p.get("partition", -1) >= 0 and p.get("fetch_state") not in (None, "none", "stopped")]
        metrics.ARCHIVE_LAG.set(sum(max(p.get("consumer_lag", -1), 0) for p in mine))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start at the group's committed offsets, read now (see the worker's `_on_assign`)."""
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            log.warning("archive: committed offsets unknown; librdkafka picks the start positions", error=str(exc))
            committed = partitions
        else:
            for tp in committed:
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
            consumer.incremental_assign(committed)
        self._fresh.update((tp.topic, tp.partition) for tp in committed)
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._batch.drop_partitions({(tp.topic, tp.partition) for tp in partitions})
