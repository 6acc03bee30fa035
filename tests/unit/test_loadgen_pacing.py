"""The load generator's pacing, batch-size choice, arguments and statistics: pure code, no clock.

The pacer takes `now` as an argument, so its schedule is checked exactly without sleeping.
"""

from __future__ import annotations

import argparse

import pytest

from streamtrack.loadgen.command import parse_rate
from streamtrack.loadgen.sender import LoadPlan, Pacer, auto_batch_size
from streamtrack.loadgen.stats import LoadStats, progress_line


def test_pacer_spaces_requests_to_the_rate() -> None:
    pacer = Pacer(100.0)  # 100 events/s: one event every 10 ms
    now = 1000.0
    delays = []
    for _ in range(5):
        wait = pacer.delay(1, now)
        delays.append(round(wait, 6))
        now += wait
    assert delays == [0.0, 0.01, 0.01, 0.01, 0.01]


def test_pacer_counts_events_not_requests() -> None:
    pacer = Pacer(1000.0)
    assert pacer.delay(50, 0.0) == 0.0
    assert pacer.delay(50, 0.0) == pytest.approx(0.05)  # 50 events at 1000/s take 50 ms


def test_pacer_catches_up_after_a_stall_but_never_floods() -> None:
    pacer = Pacer(100.0, max_debt_s=0.5)
    pacer.delay(1, 0.0)
    now = 10.0  # the API stalled for 10 s: 1000 events behind
    immediate = 0
    while pacer.delay(1, now) == 0.0:
        immediate += 1
    assert immediate == 1 + 50  # the one due now plus max_debt_s * rate events, not 1000


def test_pacer_without_rate_never_waits() -> None:
    pacer = Pacer(None)
    assert all(pacer.delay(100, float(t)) == 0.0 for t in range(100))


@pytest.mark.parametrize(
    ("rate", "batch"), [(1, 1), (100, 1), (101, 2), (1000, 10), (10_000, 100), (1_000_000, 500), (None, 100)]
)
def test_auto_batch_size_keeps_requests_near_100_per_second(rate: float | None, batch: int) -> None:
    assert auto_batch_size(rate) == batch


def test_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        LoadPlan(url="http://x", rate=0)
    with pytest.raises(ValueError, match="batch_size"):
        LoadPlan(url="http://x", batch_size=0)
    with pytest.raises(ValueError, match="count"):
        LoadPlan(url="http://x", count=-1)
    with pytest.raises(ValueError, match="duration"):
        LoadPlan(url="http://x", duration_s=0)


def test_rate_argument() -> None:
    assert parse_rate("max") is None
    assert parse_rate("MAX") is None
    assert parse_rate("2500") == 2500.0
    for bad in ("fast", "0", "-5", "1e9"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rate(bad)


def test_stats_count_events_and_report_percentiles() -> None:
    stats = LoadStats(rate=1000.0)
    for ms in range(1, 101):  # 1..100 ms
        stats.record_request(ms / 1000)
    stats.record_events(90, {"503": 6, "invalid_event": 4})
    stats.finish()
    status = stats.snapshot()
    assert (status["sent"], status["accepted"], status["errors"]) == (100, 90, 10)
    assert status["errors_by_reason"] == {"503": 6, "invalid_event": 4}
    assert status["requests"] == 100 and status["running"] is False and status["rate"] == 1000.0
    assert status["p50_ms"] == pytest.approx(50, abs=0.1)
    assert status["p95_ms"] == pytest.approx(95, abs=0.1)
    assert status["p99_ms"] == pytest.approx(99, abs=0.1)
    line = progress_line(status)
    assert "sent       100" in line and "errors 10 (503: 6, invalid_event: 4)" in line and "p99 99.0" in line


def test_stats_before_any_request() -> None:
    status = LoadStats(rate=None).snapshot()
    assert status["running"] is True
    assert (status["sent"], status["p50_ms"], status["rate"]) == (0, 0.0, None)
