"""Fault tests: break one component under load, then count every event (sent, acknowledged, stored).

Each fails on any acknowledged event lost or any event stored twice. The scenarios live in
`tests/fixtures/faults.py`; `bench/faults.py` runs longer versions and prints the table.
"""

from __future__ import annotations

from pathlib import Path

from streamtrack.kafka.local_broker import LocalBroker
from streamtrack.store import EventStore
from tests.fixtures import faults


def check(result: faults.FaultResult) -> None:
    print("\n" + faults.TABLE_HEAD + "\n" + result.row())
    assert "UNEXPECTED" not in result.note, result.note  # only 202 or 503 + Retry-After, no hang
    assert result.acknowledged > 0
    assert result.duplicated == 0, result


def test_clickhouse_down_then_back(broker: LocalBroker, clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.store_outage(broker, clean_store, tmp_path)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged
    assert "paused while down: True" in result.note


def test_broker_stopped_and_restarted(clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.broker_restart(clean_store, tmp_path)
    check(result)
    assert "503s while down: 0" not in result.note
    assert result.recovery_s is not None  # the API answered 202 again by itself
    assert result.lost_outside_window == 0, result  # what was stored stays stored
    assert result.stored_after_restart > 0, result  # the worker stores again (see faults.broker_restart)


def test_broker_hung_then_back_loses_nothing(clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.broker_freeze(clean_store, tmp_path)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged, result
    assert result.recovery_s is not None  # the API answered 202 again by itself


def test_worker_sigkilled_repeatedly_under_load(broker: LocalBroker, store: EventStore, tmp_path: Path) -> None:
    result = faults.worker_sigkills(broker, store, tmp_path, kills=3)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged


def test_poison_records_go_to_the_dead_letter_topic(broker: LocalBroker, clean_store: EventStore, tmp_path: Path) -> None:
    result = faults.poison_records(broker, clean_store, tmp_path)
    check(result)
    assert result.lost == 0 and result.stored == result.acknowledged
