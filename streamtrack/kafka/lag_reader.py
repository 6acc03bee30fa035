"""A consumer group's lag on one topic, per partition, as the operator sees it.

Built on `streamtrack.kafka.offsets`: one metadata read, the committed offsets (through a
consumer of the group, opened and closed per read: see that module on librdkafka#5040), then
low and high watermarks through the admin API. Two choices that KEDA users asked for:
- lag is counted from the low watermark at least, so records that retention deleted before
  the group read them are not counted as work (kedacore/keda#7936), and lag is never negative;
- a partition with no committed offset counts as the group's `auto.offset.reset` would read
  it: everything kept (`earliest`, what StreamTrack's workers use) or nothing (`latest`).
A missing topic is a result (`exists=False`), not an error: the caller keeps the scale and
reports it. An unreachable broker raises `BrokerUnavailable`. Use `lag_admin_client`: with
Kafka's (and Tansu's) default `auto.create.topics.enable`, a metadata request for a deleted
topic would otherwise create it again; and it keeps the settings the offsets consumer needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from confluent_kafka.admin import AdminClient

from streamtrack.kafka.offsets import (
    NO_OFFSET,
    committed_offsets,
    end_offsets,
    existing_partitions,
    lag,
    start_offsets,
)

OffsetReset = Literal["earliest", "latest"]


class LagAdminClient(AdminClient):
    """An admin client that keeps its settings: the committed offsets are read by a consumer
    made with the same servers and credentials."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.config = config


def lag_admin_client(config: dict[str, Any]) -> LagAdminClient:
    """An admin client whose metadata requests never create the topic they ask about."""
    return LagAdminClient({**config, "allow.auto.create.topics": False})


@dataclasses.dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int  # NO_OFFSET when the group never committed here
    start: int
    end: int
    lag: int


@dataclasses.dataclass(frozen=True)
class TopicLag:
    topic: str
    group: str
    exists: bool
    partitions: tuple[PartitionLag, ...] = ()

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def partitions_with_lag(self) -> int:
        return sum(1 for p in self.partitions if p.lag > 0)

    @property
    def end_total(self) -> int:
        """Sum of high watermarks: its growth over time is the production rate."""
        return sum(p.end for p in self.partitions)

    @property
    def consumed_total(self) -> int:
        """Sum of the positions the lag is counted from: its growth is the consumption rate."""
        return sum(p.end - p.lag for p in self.partitions)

    @property
    def uncommitted_partitions(self) -> int:
        return sum(1 for p in self.partitions if p.committed == NO_OFFSET)


def read_lag(
    admin: LagAdminClient, group: str, topic: str, *, offset_reset: OffsetReset = "earliest", timeout: float = 5.0
) -> TopicLag:
    """Lag of `group` on `topic`, per partition."""
    found = existing_partitions(admin, topic, timeout)
    if found is None:
        return TopicLag(topic, group, exists=False)
    committed = committed_offsets(admin.config, group, topic, timeout, of=found)
    starts = start_offsets(admin, topic, timeout, of=found)
    ends = end_offsets(admin, topic, timeout, of=found)
    positions = committed
    if offset_reset == "latest":  # a new consumer would start at the end: nothing to read yet
        positions = {p: ends[p] if c == NO_OFFSET else c for p, c in committed.items()}
    lags = lag(positions, ends, starts)
    rows = tuple(PartitionLag(p, committed.get(p, NO_OFFSET), starts[p], ends[p], lags[p]) for p in sorted(ends))
    return TopicLag(topic, group, exists=True, partitions=rows)
