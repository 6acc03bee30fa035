"""Committed offsets, end offsets and lag against Apache Kafka (the session's single node).

The records are produced in batches: Kafka's end offsets are exact after batched produces.
"""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from streamtrack.config import load_settings
from streamtrack.kafka import committed_offsets, end_offsets, lag
from streamtrack.kafka.admin import admin_client
from streamtrack.kafka.offsets import NO_OFFSET


def test_lag_equals_the_real_backlog_per_partition(broker) -> None:  # type: ignore[no-untyped-def]
    topic, group = f"lag-{uuid.uuid4().hex[:6]}", f"lag-group-{uuid.uuid4().hex[:6]}"
    settings = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers})
    admin = admin_client(settings)
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 50})
    counts = {0: 10, 1: 7, 2: 4}
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(topic, partition=partition, value=str(i).encode())
    assert producer.flush(10) == 0
    assert end_offsets(admin, topic) == counts
    assert committed_offsets(admin, group, topic) == {0: NO_OFFSET, 1: NO_OFFSET, 2: NO_OFFSET}

    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 6), TopicPartition(topic, 1, 7)], asynchronous=False)
    consumer.close()
    committed = committed_offsets(admin, group, topic)
    assert committed == {0: 6, 1: 7, 2: NO_OFFSET}
    assert lag(committed, end_offsets(admin, topic)) == {0: 4, 1: 0, 2: 4}
