"""The operator's lag reader against Apache Kafka (the session's single node).

A topic with several partitions, a real consumer group that consumes part of it, and the
lag read (committed offsets through a consumer of the group, watermarks through the admin API)
equals the records left, per partition. Records are produced in batches, as any producer sends
them: Kafka's high watermarks are exact.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamtrack.errors import BrokerUnavailable
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.lag_reader import lag_admin_client, read_lag
from streamtrack.kafka.offsets import NO_OFFSET

COUNTS = {0: 12, 1: 9, 2: 5, 3: 0}


def _topic(broker: KafkaCluster, partitions: int) -> tuple[AdminClient, str]:
    admin = lag_admin_client({"bootstrap.servers": broker.bootstrap_servers})
    topic = f"lag-reader-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result(10)
    return admin, topic


def _produce(broker: KafkaCluster, topic: str, counts: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 50})
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(topic, partition=partition, value=f"{partition}-{i}".encode())
    assert producer.flush(10) == 0


def _consume(broker: KafkaCluster, topic: str, group: str, wanted: dict[int, int]) -> dict[int, int]:
    """A real group member reads `wanted[p]` records of each partition and commits them."""
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in wanted])
    read = dict.fromkeys(wanted, 0)
    try:
        for _ in range(200):
            if read == wanted:
                break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            partition = msg.partition()
            if read[partition] < wanted[partition]:
                read[partition] += 1
                consumer.commit(message=msg, asynchronous=False)
            else:  # read past what this test wants: rewind so nothing more is committed
                consumer.seek(TopicPartition(topic, partition, read[partition]))
    finally:
        consumer.close()
    return read


def test_lag_per_partition_equals_the_records_left(broker: KafkaCluster) -> None:
    admin, topic = _topic(broker, 4)
    _produce(broker, topic, COUNTS)
    group = f"lag-reader-group-{uuid.uuid4().hex[:8]}"
    consumed = _consume(broker, topic, group, {0: 5, 1: 9, 2: 0})
    assert consumed == {0: 5, 1: 9, 2: 0}

    report = read_lag(admin, group, topic)

    assert report.exists
    assert {p.partition: p.lag for p in report.partitions} == {0: 7, 1: 0, 2: 5, 3: 0}
    assert {p.partition: p.committed for p in report.partitions} == {0: 5, 1: 9, 2: NO_OFFSET, 3: NO_OFFSET}
    assert {p.partition: p.end for p in report.partitions} == COUNTS
    assert report.total == 12
    assert report.partitions_with_lag == 2
    assert report.consumed_total == 5 + 9
    assert report.end_total == sum(COUNTS.values())


def test_a_group_that_never_committed(broker: KafkaCluster) -> None:
    admin, topic = _topic(broker, 3)
    _produce(broker, topic, {0: 4, 1: 2, 2: 0})
    group = f"never-{uuid.uuid4().hex[:8]}"

    earliest = read_lag(admin, group, topic, offset_reset="earliest")
    latest = read_lag(admin, group, topic, offset_reset="latest")

    assert {p.partition: p.lag for p in earliest.partitions} == {0: 4, 1: 2, 2: 0}
    assert earliest.uncommitted_partitions == 3
    assert {p.partition: p.lag for p in latest.partitions} == {0: 0, 1: 0, 2: 0}
    assert all(p.committed == NO_OFFSET for p in latest.partitions)


def test_a_deleted_topic_is_reported_not_raised(broker: KafkaCluster) -> None:
    admin, topic = _topic(broker, 2)
    _produce(broker, topic, {0: 3, 1: 1})
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.result(10)

    report = read_lag(admin, "any-group", topic)

    assert not report.exists
    assert report.total == 0 and report.partitions == ()


def test_an_unreachable_broker_raises_broker_unavailable() -> None:
    # port 9 (discard) on loopback: nothing listens there; librdkafka gets "connection refused"
    admin = lag_admin_client({"bootstrap.servers": "127.0.0.1:9", "socket.connection.setup.timeout.ms": 1000})
    with pytest.raises(BrokerUnavailable, match="cannot read metadata"):
        read_lag(admin, "group", "events", timeout=1.5)
