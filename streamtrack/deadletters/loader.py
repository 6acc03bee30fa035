"""Loading the dead-letter topic into ClickHouse's `dead_letters` table.

`DeadLetterLoader.run` is a consumer group of its own (STREAMTRACK_DLQ_CONSUMER_GROUP) that
each worker process runs on a thread (STREAMTRACK_DLQ_TABLE): insert, then commit, so no
dead letter is missed; while ClickHouse is unavailable it retries its batch with consumption
paused and the group served, as the worker does (`worker.group`). Loading is idempotent
without any bookkeeping: a row's first version has `updated_at` = the time it died, a replay
writes a later version, and the table keeps the latest per record (ReplacingMergeTree), so
loading a record again never undoes what a replay wrote. That is why `catch_up` (what `streamtrack dlq` runs before it
answers) may read the topic beside the group, without joining or committing.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable, RetryableError
from streamtrack.events import DEFAULT_PROJECT
from streamtrack.kafka.admin import client_config
from streamtrack.store import EventStore
from streamtrack.store import deadletters as table
from streamtrack.telemetry import metrics
from streamtrack.worker.batching import Batch
from streamtrack.worker.group import GroupMember

log = structlog.get_logger(__name__)
DLQ_HEADER_PREFIX = "streamtrack-dlq-"
BATCH_EVENTS = 5000
BATCH_WAIT_S = 1.0


def _header(headers: dict[str, bytes], name: str, default: str = "") -> str:
    return headers.get(DLQ_HEADER_PREFIX + name, default.encode()).decode("utf-8", "replace")


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def claimed_ids(value: bytes | None) -> tuple[str, str]:
    """(project, event id) a record names, '' where it names none.

    A JSON object without `project_id` but with an event's fields is the default project's
    (the API leaves the default out of the JSON); anything else has no known project.
    """
    if not value:
        return "", ""
    try:
        data: Any = msgspec.json.decode(value)
    except (msgspec.DecodeError, RecursionError):
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else ""
    project = data.get("project_id")
    if isinstance(project, str) and project:
        return project, event_id
    return (DEFAULT_PROJECT if event_id or "event_type" in data else ""), event_id


def letter_of(message: Message) -> table.DeadLetter:
    """The row of one record of the dead-letter topic (see `worker.deadletter` for its headers)."""
    pairs = [(k, v or b"") for k, v in (message.headers() or [])]
    ours = {k: v for k, v in pairs if k.startswith(DLQ_HEADER_PREFIX)}
    project, event_id = claimed_ids(message.value())
    dead_at = _int(_header(ours, "at"), message.timestamp()[1])
    return table.DeadLetter(
        dlq_topic=message.topic() or "", dlq_partition=message.partition() or 0, dlq_offset=message.offset() or 0,
        topic=_header(ours, "topic"), partition=_int(_header(ours, "partition"), -1),
        offset=_int(_header(ours, "offset"), -1), reason=_header(ours, "reason", "unknown"),
        error=_header(ours, "error"), value=message.value(), key=message.key(),
        headers=tuple((k, v) for k, v in pairs if not k.startswith(DLQ_HEADER_PREFIX)),
        project_id=project, event_id=event_id, dead_at=dead_at, updated_at=dead_at,
    )


class DeadLetterLoader:
    """One member of the loader group (`worker.group`, as the worker). `run()` blocks until `stop()`."""

    def __init__(self, settings: Settings, store: EventStore) -> None:
        self.settings = settings
        self.store = store
        self.loaded = 0
        self._member = GroupMember(
            settings, group=settings.dlq_consumer_group, client_id="streamtrack-dlq-loader",
            lag=metrics.DEAD_LETTERS_LAG,
        )

    @property
    def paused(self) -> bool:
        """Consumption is paused: a batch is being retried while ClickHouse is unavailable."""
        return self._member.paused

    def stop(self) -> None:
        self._member.stop_requested.set()

    def run(self) -> int:
        member = self._member
        member.subscribe(self.settings.dlq_topic)
        try:
            while not member.stop_requested.is_set():
                batch = member.next_batch(BATCH_EVENTS, BATCH_WAIT_S)
                if batch.messages:
                    self._process(batch)
        finally:
            member.close()
        return self.loaded

    def _process(self, batch: Batch) -> None:
        if self._member.retrying(lambda: self._insert(batch), _note_failure) is None:
            return  # stopping: the partitions' next owner loads the batch again
        try:
            self._member.commit(batch)
        except KafkaException as exc:
            log.warning("dead letters: commit failed; loaded again by the next owner (harmless)", error=str(exc))

    def _insert(self, batch: Batch) -> int:
        """Insert the batch's letters (raises RetryableError while ClickHouse is unavailable)."""
        letters = [letter_of(m) for m in batch.messages]  # at each attempt: a rebalance may have trimmed the batch
        table.insert(self.store, letters, dedup_token=batch.dedup_token())
        self.loaded += len(letters)
        metrics.DEAD_LETTERS_LOADED.inc(len(letters))
        return len(letters)


def _note_failure(error: RetryableError, retry_in: float) -> None:
    log.warning("dead letters not loaded; consumption paused, retrying", error=error.message, retry_in=retry_in)


def catch_up(settings: Settings, store: EventStore, timeout: float = 30.0) -> int:
    """Load what the dead-letter topic holds beyond the loader group's commits; returns the rows written.

    Reads beside the group (assign, no commit): see the module docstring for why that is safe.
    """
    consumer = Consumer(client_config(settings, **{
        "group.id": settings.dlq_consumer_group, "enable.auto.commit": False, "enable.auto.offset.store": False,
        "client.id": f"streamtrack-dlq-catch-up-{uuid.uuid4().hex[:6]}",
    }))
    try:
        try:
            meta = consumer.list_topics(settings.dlq_topic, timeout=10).topics.get(settings.dlq_topic)
            if meta is None or meta.error is not None:
                return 0
            partitions = [TopicPartition(settings.dlq_topic, p) for p in meta.partitions]
            starts = consumer.committed(partitions, timeout=10)
            ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
        except KafkaException as exc:
            raise BrokerUnavailable(f"cannot read the dead-letter topic {settings.dlq_topic!r}: {exc}") from exc
        wanted = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                  for tp in starts if ends[tp.partition] > max(tp.offset, 0)]
        if not wanted:
            return 0
        consumer.assign(wanted)
        left = {tp.partition: ends[tp.partition] for tp in wanted}
        letters: list[table.DeadLetter] = []
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is not None:
                    continue
                letters.append(letter_of(message))
                if message.offset() + 1 >= left.get(message.partition(), 0):
                    left.pop(message.partition(), None)
        if left:
            raise BrokerUnavailable(f"the dead-letter topic was not read to its end within {timeout:.0f} s")
        for start in range(0, len(letters), BATCH_EVENTS):
            table.insert(store, letters[start:start + BATCH_EVENTS])
        return len(letters)
    finally:
        consumer.close()
