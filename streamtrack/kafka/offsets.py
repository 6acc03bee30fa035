"""Committed offsets, end offsets and consumer lag per partition.

The one place that reads a consumer group's committed offsets from outside the group: the lag
reader (so the operator and /pipeline/status), the fault fixtures, tests and benches all call
`committed_offsets`. It reads them through a consumer of the group that never subscribes (so
it never joins the group or moves its partitions), not through the admin API: librdkafka's
admin ListConsumerGroupOffsets dereferences a null group handle when the coordinator answers
NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS and crashes the whole process (librdkafka#5040,
still in confluent-kafka 2.16.1); Apache Kafka answers so while __consumer_offsets loads, on a
fresh cluster or after a coordinator moves. The consumer lives for one read and is closed, so
no idle client keeps reconnecting to a broker that went away.
Note: the zero-dependency dev broker (Tansu v0.6, `streamtrack dev --broker tansu`) reports
a partition's high watermark as the base offset of its last record batch + 1, so on it
`end_offsets` under-counts after batched produces; Apache Kafka's are exact. The dev mode's
drain compares the worker's committed offsets with the producer's delivery reports, exact on both.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streamtrack.errors import BrokerUnavailable

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group has committed nothing here
# answers of a group coordinator that is loading or moving: asked again until the timeout
COORDINATOR_MOVING = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                                KafkaError.COORDINATOR_NOT_AVAILABLE})
RETRY_PAUSE_S = 0.2


def existing_partitions(admin: AdminClient | Consumer, topic: str, timeout: float = 5.0) -> list[int] | None:
    """The topic's partitions, or None when the broker answers that the topic does not exist."""
    try:
        meta = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read metadata of {topic!r}: {exc}") from exc
    if meta is None or (meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        return None
    if meta.error is not None:
        raise BrokerUnavailable(f"topic {topic!r} is not available: {meta.error}")
    return sorted(meta.partitions)


def partitions(admin: AdminClient | Consumer, topic: str, timeout: float = 5.0) -> list[int]:
    found = existing_partitions(admin, topic, timeout)
    if found is None:
        raise BrokerUnavailable(f"topic {topic!r} is not available")
    return found


def committed_offsets(
    config: Mapping[str, Any], group: str, topic: str, timeout: float = 5.0, *, of: list[int] | None = None
) -> dict[int, int]:
    """partition -> next offset `group` will read (NO_OFFSET where it never committed).

    `config`: the client settings (servers, credentials); `of`: the partitions to ask about,
    when the caller read the metadata already. A coordinator that is loading or moving is asked
    again until `timeout`; after that, or on any other error, BrokerUnavailable.
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(topic, p) for p in (partitions(consumer, topic, timeout) if of is None else of)]
        while True:
            try:
                found = consumer.committed(wanted, timeout=max(0.1, deadline - time.monotonic()))
                failed = next((tp.error for tp in found if tp.error is not None), None)
                if failed is not None:
                    raise KafkaException(failed)
                return {tp.partition: tp.offset for tp in found}
            except KafkaException as exc:
                error = exc.args[0]
                moving = error.code() in COORDINATOR_MOVING or error.retriable()
                if not moving or time.monotonic() + RETRY_PAUSE_S > deadline:
                    raise BrokerUnavailable(f"cannot read offsets of group {group!r}: {exc}") from exc
                time.sleep(RETRY_PAUSE_S)
    finally:
        consumer.close()


def end_offsets(admin: AdminClient, topic: str, timeout: float = 5.0, *, of: list[int] | None = None) -> dict[int, int]:
    """partition -> high watermark (offset of the next record to be written)."""
    return _list_offsets(admin, topic, OffsetSpec.latest(), timeout, of)


def start_offsets(admin: AdminClient, topic: str, timeout: float = 5.0, *, of: list[int] | None = None) -> dict[int, int]:
    """partition -> low watermark (oldest record still kept: retention deletes what is before it)."""
    return _list_offsets(admin, topic, OffsetSpec.earliest(), timeout, of)


def _list_offsets(
    admin: AdminClient, topic: str, spec: OffsetSpec, timeout: float, of: list[int] | None
) -> dict[int, int]:
    of = partitions(admin, topic, timeout) if of is None else of
    request = {TopicPartition(topic, p): spec for p in of}
    try:
        futures = admin.list_offsets(request, request_timeout=timeout)
        return {tp.partition: f.result(timeout).offset for tp, f in futures.items()}
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read offsets of {topic!r}: {exc}") from exc


def lag(committed: dict[int, int], ends: dict[int, int], starts: dict[int, int] | None = None) -> dict[int, int]:
    """Records not yet consumed, per partition; a partition never committed counts from its start.

    A committed offset below the start (retention deleted records the group never read) counts
    from the start too: deleted records are not work left to do.
    """
    starts = starts or {}
    result = {}
    for partition, end in ends.items():
        position = max(committed.get(partition, NO_OFFSET), starts.get(partition, 0))
        result[partition] = max(end - position, 0)
    return result
