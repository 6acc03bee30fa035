"""The fault suite on Apache Kafka's 3-node cluster (RF 3, min.insync.replicas 2), and dev mode
on Kafka killed whole: every acknowledged (202) event is stored, and stored once.

The scenarios live in tests/fixtures/cluster_faults.py; bench/faults.py runs them as rows of
the table in docs/benchmarks.md ("Faults"). They share the session's cluster (tests/fixtures/kafka.py): each one
waits for the cluster to be whole before its fault and leaves it whole.
"""

from __future__ import annotations

from pathlib import Path

from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from tests.fixtures import cluster_faults
from tests.fixtures.faults import TABLE_HEAD, FaultResult


def check(result: FaultResult) -> None:
    print("\n" + TABLE_HEAD + "\n" + result.row())
    assert "UNEXPECTED" not in result.note, result.note  # only 202 or 503 + Retry-After, no hang
    assert result.acknowledged > 0
    assert result.lost == 0 and result.stored == result.acknowledged, result
    assert result.duplicated == 0, result
    assert result.recovery_s is not None


def test_busiest_partitions_leader_sigkilled_five_times(kafka_cluster: KafkaCluster, clean_store: EventStore,
                                                        tmp_path: Path) -> None:
    result = cluster_faults.leader_kills(kafka_cluster, clean_store, tmp_path, kills=5)
    check(result)


def test_active_controller_sigkilled(kafka_cluster: KafkaCluster, clean_store: EventStore, tmp_path: Path) -> None:
    result = cluster_faults.controller_kill(kafka_cluster, clean_store, tmp_path)
    check(result)


def test_leader_frozen_ten_seconds(kafka_cluster: KafkaCluster, clean_store: EventStore, tmp_path: Path) -> None:
    result = cluster_faults.leader_freeze(kafka_cluster, clean_store, tmp_path, frozen_s=10.0)
    check(result)


def test_worker_sigkilled_during_a_leader_failover(kafka_cluster: KafkaCluster, store: EventStore,
                                                   tmp_path: Path) -> None:
    result = cluster_faults.worker_kill_in_failover(kafka_cluster, store, tmp_path)
    check(result)


def test_dev_mode_on_kafka_sigkilled_whole_then_restarted(tmp_path: Path) -> None:
    result = cluster_faults.dev_kill(tmp_path)
    check(result)
