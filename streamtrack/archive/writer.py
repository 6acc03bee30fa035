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
from collections.abc import Callable

import structlog
from confluent_kafka import KafkaException, Message, TopicPartition

from streamtrack.archive import layout
from streamtrack.archive.objects import ObjectStore
from streamtrack.config import Settings
from streamtrack.errors import RetryableError
from streamtrack.events import Event
from streamtrack.telemetry import metrics
from streamtrack.worker.batching import Batch
from streamtrack.worker.group import GroupMember
from streamtrack.worker.records import REPLAY_HEADER, check_value

log = structlog.get_logger(__name__)
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
    """One member of the archive's group (`worker.group`, as the worker). `run()` blocks until `stop()`."""

    def __init__(self, settings: Settings, objects: ObjectStore | None = None) -> None:
        self.settings = settings
        self.objects = objects or ObjectStore(settings)
        self.prefix = settings.archive_prefix
        self.stats = ArchiveStats()
        self._fresh: set[tuple[str, int]] = set()
        """Partitions assigned since their last batch: their first batch checks earlier attempts."""
        self._member = GroupMember(
            settings, group=settings.archive_consumer_group, client_id="streamtrack-archive",
            lag=metrics.ARCHIVE_LAG, on_assigned=self._on_assigned,
        )
        self.assigned = self._member.assigned

    def stop(self) -> None:
        self._member.stop_requested.set()

    def run(self) -> ArchiveStats:
        if not self._member.retrying(lambda: self.objects.ensure_bucket() or True, self._on_failure("bucket not ready")):
            self._member.close()
            return self.stats
        self._member.subscribe(self.settings.topic)
        log.info("archive writer started", topic=self.settings.topic, bucket=self.objects.bucket,
                 endpoint=self.objects.endpoint, group=self.settings.archive_consumer_group)
        try:
            while not self._member.stop_requested.is_set():
                batch = self._member.next_batch(self.settings.archive_batch_max_events,
                                                self.settings.archive_batch_max_wait_ms / 1000)
                if batch.messages:
                    self._process(batch)
        finally:
            self._member.close()
            log.info("archive writer stopped", **{k: v for k, v in dataclasses.asdict(self.stats).items()
                                                    if k != "committed"})
        return self.stats

    def _process(self, batch: Batch) -> None:
        written = self._member.retrying(lambda: self._write(batch), self._on_failure("batch not archived"))
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

    def _on_failure(self, what: str) -> Callable[[RetryableError, float], None]:
        """What a failed attempt at `what` notes: a retry counted and logged."""

        def note(error: RetryableError, retry_in: float) -> None:
            self.stats.retries += 1
            metrics.ARCHIVE_RETRIES.inc()
            log.warning(f"archive: {what}; consumption paused, retrying", error=error.message, retry_in=retry_in)

        return note

    def _commit(self, batch: Batch) -> None:
        try:
            offsets = self._member.commit(batch)
        except KafkaException as exc:
            log.warning("archive: commit failed; the partitions' next owner writes the batch again", error=str(exc))
            return
        for tp in offsets:
            self.stats.committed[tp.partition] = tp.offset

    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        self._fresh.update((tp.topic, tp.partition) for tp in partitions)
