"""Fault tests on the single Apache Kafka node: break one component under load, then count
every event (sent, acknowledged, stored).

Each fails on any acknowledged event lost or any event stored twice. The scenarios live in
`tests/fixtures/faults.py`; `bench/faults.py` runs longer versions and prints the table. The
broker scenarios kill and freeze the session's broker and leave it running again; the
3-node cluster's scenarios are in tests/e2e/test_kafka_faults.py.
"""

from __future__ import annotations

from pathlib import Path

from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from tests.fixtures import faults


def check(result: faults.FaultResult) -> None:
    print("\n" + faults.TABLE_HEAD + "\n" + result.row())
    assert "UNEXPECTED" not in result.note, result.note  # only 202 or 503 + Retry-After, no hang
    assert result.acknowledged > 0
    assert result.duplicated == 0, result


def test_clickhouse_down_then_back(broker: KafkaCluster, clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.store_outage(broker, clean_store, tmp_path)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged
    assert "paused while down: True" in result.note


def test_broker_sigkilled_and_restarted_loses_nothing(broker: KafkaCluster, clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.broker_restart(broker, clean_store, tmp_path)
    check(result)
    assert "503s while down: 0" not in result.note
    assert result.lost == 0 and result.stored == result.acknowledged, result
    assert result.recovery_s is not None  # the API answered 202 again by itself


def test_broker_hung_then_back_loses_nothing(broker: KafkaCluster, clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.broker_freeze(broker, clean_store, tmp_path, frozen_s=10.0)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged, result
    assert result.recovery_s is not None  # the API answered 202 again by itself


def test_worker_sigkilled_repeatedly_under_load(broker: KafkaCluster, store: EventStore, tmp_path: Path) -> None:
    result = faults.worker_sigkills(broker, store, tmp_path, kills=3)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged


def test_poison_records_go_to_the_dead_letter_topic(broker: KafkaCluster, clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.poison_records(broker, clean_store, tmp_path)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged
