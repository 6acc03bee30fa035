"""Committed offsets, end offsets and lag against Apache Kafka (the session's single node, and a
fresh one for the coordinator that is still loading).

The records are produced in batches: Kafka's end offsets are exact after batched produces.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from streamtrack.config import load_settings
from streamtrack.errors import BrokerUnavailable
from streamtrack.kafka import client_config, committed_offsets, end_offsets, lag
from streamtrack.kafka.admin import admin_client
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.offsets import NO_OFFSET


def test_lag_equals_the_real_backlog_per_partition(broker: KafkaCluster) -> None:
    topic, group = f"lag-{uuid.uuid4().hex[:6]}", f"lag-group-{uuid.uuid4().hex[:6]}"
    settings = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers})
    admin, config = admin_client(settings), client_config(settings)
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 50})
    counts = {0: 10, 1: 7, 2: 4}
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(topic, partition=partition, value=str(i).encode())
    assert producer.flush(10) == 0
    assert end_offsets(admin, topic) == counts
    assert committed_offsets(config, group, topic) == {0: NO_OFFSET, 1: NO_OFFSET, 2: NO_OFFSET}

    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 6), TopicPartition(topic, 1, 7)], asynchronous=False)
    consumer.close()
    committed = committed_offsets(config, group, topic)
    assert committed == {0: 6, 1: 7, 2: NO_OFFSET}
    assert committed_offsets(config, group, topic, of=[1]) == {1: 7}
    assert lag(committed, end_offsets(admin, topic)) == {0: 4, 1: 0, 2: 4}


def test_a_missing_topic_or_an_unreachable_broker_raises_broker_unavailable(broker: KafkaCluster) -> None:
    with pytest.raises(BrokerUnavailable, match="is not available"):
        committed_offsets({"bootstrap.servers": broker.bootstrap_servers}, "group", f"none-{uuid.uuid4().hex[:6]}")
    # port 9 (discard) on loopback: nothing listens there
    with pytest.raises(BrokerUnavailable, match="cannot read offsets of group 'group'"):
        committed_offsets({"bootstrap.servers": "127.0.0.1:9"}, "group", "events", timeout=1.5, of=[0])


FRESH_READS = """
import sys
from streamtrack.kafka import committed_offsets
for i in range(5):
    print(committed_offsets({"bootstrap.servers": sys.argv[1]}, f"unseen-{i}", "events", timeout=30, of=[0, 1]))
"""


def test_a_read_right_after_a_fresh_broker_starts(tmp_path: Path) -> None:
    """The coordinator is still loading (__consumer_offsets not made yet): librdkafka's admin
    ListConsumerGroupOffsets crashed here with SIGSEGV (librdkafka#5040). The reads run in a
    child process, so a crash fails the test instead of killing the test run."""
    with KafkaCluster(tmp_path / "kafka", nodes=1) as fresh:
        done = subprocess.run([sys.executable, "-c", FRESH_READS, fresh.bootstrap_servers],
                              capture_output=True, text=True, timeout=180)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [str({0: NO_OFFSET, 1: NO_OFFSET})] * 5
