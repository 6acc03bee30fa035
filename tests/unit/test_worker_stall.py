"""When the worker decides its consumer is stuck (librdkafka's per-partition statistics)."""

from __future__ import annotations

from streamtrack.worker.runner import stuck


def test_fetched_records_not_delivered_are_stuck() -> None:
    assert stuck({"fetchq_cnt": 12, "next_offset": 40, "hi_offset": 40})


def test_records_beyond_the_fetch_position_are_stuck() -> None:
    assert stuck({"fetchq_cnt": 0, "next_offset": 0, "hi_offset": 350})


def test_caught_up_or_not_started_is_not() -> None:
    assert not stuck({"fetchq_cnt": 0, "next_offset": 350, "hi_offset": 350})
    assert not stuck({"fetchq_cnt": 0, "next_offset": -1001, "hi_offset": 350})  # no position yet
    assert not stuck({"fetchq_cnt": 0, "next_offset": 10, "hi_offset": -1})  # no watermark yet
    # the local broker reports a high watermark below the end after batched produces
    assert not stuck({"fetchq_cnt": 0, "next_offset": 360, "hi_offset": 350})
