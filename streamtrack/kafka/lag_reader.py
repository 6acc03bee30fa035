"""A consumer group's lag on one topic, per partition, as the operator sees it.

Built on `streamtrack.kafka.offsets` (one metadata read, then committed offsets, low and high
watermarks through the admin API). Two choices that KEDA users asked for:
- lag is counted from the low watermark at least, so records that retention deleted before
  the group read them are not counted as work (kedacore/keda#7936), and lag is never negative;
- a partition with no committed offset counts as the group's `auto.offset.reset` would read
  it: everything kept (`earliest`, what StreamTrack's workers use) or nothing (`latest`).
A missing topic is a result (`exists=False`), not an error: the caller keeps the scale and
reports it. An unreachable broker raises `BrokerUnavailable`. Use `lag_admin_client`: with
Kafka's (and Tansu's) default `auto.create.topics.enable`, a metadata request for a deleted
topic would otherwise create it again; and it reads the committed offsets through a consumer
of the group (never subscribed, so it never joins it), because librdkafka's admin
ListConsumerGroupOffsets dereferences a null group handle when the coordinator answers
NOT_COORDINATOR and crashes the whole process (librdkafka#5040, still in confluent-kafka
2.16.1): on Apache Kafka that answer comes while __consumer_offsets loads, e.g. on a fresh
cluster or after a coordinator moves. A consumer retries it through its group handle.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streamtrack.errors import BrokerUnavailable

from streamtrack.kafka.offsets import (
    NO_OFFSET,
    committed_offsets,
    end_offsets,
    existing_partitions,
    lag,
    start_offsets,
)

OffsetReset = Literal["earliest", "latest"]
# answers of a group coordinator that is loading or moving: asked again until the timeout
COORDINATOR_MOVING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                      KafkaError.COORDINATOR_NOT_AVAILABLE}


class LagAdminClient(AdminClient):
    """An admin client that also reads groups' committed offsets through consumers (see above)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._config = config
        self._consumers: dict[str, Consumer] = {}

    def committed(self, group: str, topic: str, partitions: list[int], timeout: float) -> dict[int, int]:
        """partition -> next offset `group` will read (NO_OFFSET where it never committed)."""
        if group not in self._consumers:
            self._consumers[group] = Consumer({**self._config, "group.id": group, "enable.auto.commit": False})
        wanted = [TopicPartition(topic, p) for p in partitions]
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self._consumers[group].committed(wanted, timeout=max(0.1, deadline - time.monotonic()))
                return {tp.partition: tp.offset for tp in found}
            except KafkaException as exc:
                moving = exc.args[0].code() in COORDINATOR_MOVING or exc.args[0].retriable()
                if not moving or time.monotonic() > deadline - 0.2:
                    raise BrokerUnavailable(f"cannot read offsets of group {group!r}: {exc}") from exc
                time.sleep(0.2)


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
    admin: AdminClient, group: str, topic: str, *, offset_reset: OffsetReset = "earliest", timeout: float = 5.0
) -> TopicLag:
    """Lag of `group` on `topic`, per partition."""
    found = existing_partitions(admin, topic, timeout)
    if found is None:
        return TopicLag(topic, group, exists=False)
    if isinstance(admin, LagAdminClient):
        committed = admin.committed(group, topic, found, timeout)
    else:  # the admin API: see the module's note on librdkafka#5040
        committed = committed_offsets(admin, group, topic, timeout, of=found)
    starts = start_offsets(admin, topic, timeout, of=found)
    ends = end_offsets(admin, topic, timeout, of=found)
    positions = committed
    if offset_reset == "latest":  # a new consumer would start at the end: nothing to read yet
        positions = {p: ends[p] if c == NO_OFFSET else c for p, c in committed.items()}
    lags = lag(positions, ends, starts)
    rows = tuple(PartitionLag(p, committed.get(p, NO_OFFSET), starts[p], ends[p], lags[p]) for p in sorted(ends))
    return TopicLag(topic, group, exists=True, partitions=rows)
