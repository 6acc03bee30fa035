"""Committed offsets, end offsets and consumer lag per partition.

Used by the dev mode's drain and the tests today, and by the operator's lag reader.
Note: the local Tansu broker (v0.6) reports a partition's high watermark as the base
offset of its last record batch + 1, not the last offset + 1, so on it `end_offsets`
under-counts after batched produces. Where exactness matters locally, compare committed
offsets with the offsets the producer's delivery reports gave instead.
"""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streamtrack.errors import BrokerUnavailable

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group has committed nothing here


def partitions(admin: AdminClient, topic: str, timeout: float = 5.0) -> list[int]:
    try:
        meta = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read metadata of {topic!r}: {exc}") from exc
    if meta is None or meta.error is not None:
        raise BrokerUnavailable(f"topic {topic!r} is not available")
    return sorted(meta.partitions)


def committed_offsets(admin: AdminClient, group: str, topic: str, timeout: float = 5.0) -> dict[int, int]:
    """partition -> next offset the group will read (NO_OFFSET where it never committed)."""
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in partitions(admin, topic, timeout)]
    )
    try:
        result = admin.list_consumer_group_offsets([request], request_timeout=timeout)[group].result(timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read offsets of group {group!r}: {exc}") from exc
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def end_offsets(admin: AdminClient, topic: str, timeout: float = 5.0) -> dict[int, int]:
    """partition -> high watermark (offset of the next record to be written)."""
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions(admin, topic, timeout)}
    try:
        return {tp.partition: f.result(timeout).offset for tp, f in admin.list_offsets(request).items()}
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read end offsets of {topic!r}: {exc}") from exc


def lag(committed: dict[int, int], ends: dict[int, int], starts: dict[int, int] | None = None) -> dict[int, int]:
    """Records not yet consumed, per partition; a partition never committed counts from its start."""
    starts = starts or {}
    result = {}
    for partition, end in ends.items():
        position = committed.get(partition, NO_OFFSET)
        if position < 0:
            position = starts.get(partition, 0)
        result[partition] = max(end - position, 0)
    return result
