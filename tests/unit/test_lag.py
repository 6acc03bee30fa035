"""Lag arithmetic: what the dev drain and the operator count as work left."""

from __future__ import annotations

from streamtrack.kafka.offsets import NO_OFFSET, lag


def test_lag_per_partition():
    assert lag({0: 5, 1: 10}, {0: 12, 1: 10}) == {0: 7, 1: 0}


def test_partition_never_committed_counts_from_its_start():
    assert lag({0: NO_OFFSET}, {0: 12}) == {0: 12}
    assert lag({}, {0: 12}, starts={0: 4}) == {0: 8}  # retention removed offsets 0-3


def test_lag_is_never_negative():
    assert lag({0: 15}, {0: 12}) == {0: 0}
