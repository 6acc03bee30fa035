"""`streamtrack dlq replay`: a dead letter checked again under today's rules, and produced again if it passes.

The check is the worker's own (`worker.records.check_value`, with the settings in force),
so a record passes here exactly when the worker would store it. One that passes goes back
to the events topic as it came (value, key, original headers) plus the `streamtrack-replay`
header, and its row becomes `replayed`; one that still fails stays `dead`, with the new
reason and error. Replays are idempotent: a replayed row is not picked again, and if the
row's update was lost after the produce, the worker drops the second copy (the event is
stored already: `worker.dedup`, which checks replayed batches against ClickHouse).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from confluent_kafka import KafkaException, Producer

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable
from streamtrack.events import Event
from streamtrack.kafka.admin import client_config
from streamtrack.store import EventStore
from streamtrack.store import deadletters as table
from streamtrack.timestamps import now_ms
from streamtrack.worker.records import REPLAY_HEADER, check_value


@dataclasses.dataclass
class ReplayOutcome:
    replayed: list[table.DeadLetter] = dataclasses.field(default_factory=list)
    still_dead: list[table.DeadLetter] = dataclasses.field(default_factory=list)
    """With the reason and error of this attempt."""


def replay_letters(settings: Settings, store: EventStore, letters: Sequence[table.DeadLetter]) -> ReplayOutcome:
    """Re-check and produce the `dead` ones among `letters`; rows updated once the broker acknowledged."""
    outcome = ReplayOutcome()
    passing: list[table.DeadLetter] = []
    at = now_ms()
    for letter in letters:
        if letter.status != table.DEAD:
            continue
        checked = check_value(letter.value, settings.max_record_bytes)
        if isinstance(checked, Event):
            passing.append(letter)
        else:
            reason, error = checked
            outcome.still_dead.append(dataclasses.replace(letter, reason=reason, error=error,
                                                          replays=letter.replays + 1, updated_at=at))
    if passing:
        _produce(settings, passing)
        outcome.replayed = [dataclasses.replace(letter, status=table.REPLAYED, replays=letter.replays + 1, updated_at=at)
                            for letter in passing]
    table.insert(store, [*outcome.replayed, *outcome.still_dead])
    return outcome


def _produce(settings: Settings, letters: Sequence[table.DeadLetter]) -> None:
    errors: list[str] = []

    def report(err, _msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            errors.append(err.str())

    producer = Producer(client_config(settings, **{"enable.idempotence": True, "acks": "all",
                                                   "client.id": "streamtrack-dlq-replay"}))
    try:
        for letter in letters:
            headers = [*letter.headers, (REPLAY_HEADER, b"dead-letter")]
            producer.produce(settings.topic, value=letter.value, key=letter.key, headers=headers, on_delivery=report)
    except (BufferError, KafkaException) as exc:
        raise BrokerUnavailable(f"dlq replay: cannot produce: {exc}") from exc
    left = producer.flush(30)
    if left or errors:
        raise BrokerUnavailable(f"dlq replay: {left} records not acknowledged, errors: {errors[:3]}")
