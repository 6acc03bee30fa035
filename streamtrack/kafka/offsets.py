"""Committed offsets, end offsets and consumer lag per partition.

Used by the dev mode's drain and the tests today, and by the operator's lag reader.
Note: the zero-dependency dev broker (Tansu v0.6, `streamtrack dev --broker tansu`) reports
a partition's high watermark as the base offset of its last record batch + 1, so on it
`end_offsets` under-counts after batched produces; Apache Kafka's are exact. The dev mode's
drain compares committed offsets with the producer's delivery reports, exact on both.
"""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streamtrack.errors import BrokerUnavailable

NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group has committed nothing here


def existing_partitions(admin: AdminClient, topic: str, timeout: float = 5.0) -> list[int] | None:
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


def partitions(admin: AdminClient, topic: str, timeout: float = 5.0) -> list[int]:
    found = existing_partitions(admin, topic, timeout)
    if found is None:
        raise BrokerUnavailable(f"topic {topic!r} is not available")
    return found


def committed_offsets(
    admin: AdminClient, group: str, topic: str, timeout: float = 5.0, *, of: list[int] | None = None
) -> dict[int, int]:
    """partition -> next offset the group will read (NO_OFFSET where it never committed).

    `of`: the partitions to ask about, when the caller read the metadata already.
    """
    of = partitions(admin, topic, timeout) if of is None else of
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in of])
    try:
        result = admin.list_consumer_group_offsets([request], request_timeout=timeout)[group].result(timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot read offsets of group {group!r}: {exc}") from exc
    return {tp.partition: tp.offset for tp in result.topic_partitions}


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
