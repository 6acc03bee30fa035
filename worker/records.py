"""Turning Kafka records into events, and saying why when a record cannot be one.

The API only produces valid events, but the topic is open to anyone with broker access
(other producers, replays, poison records), so every record is checked again against
what the table can store. A record that fails becomes a `Rejected` with a reason code
and a message; it goes to the dead-letter topic, never silently away.
"""

from __future__ import annotations

import dataclasses

import msgspec
from confluent_kafka import Message

from streamtrack.events import Event, decode_event
from streamtrack.timestamps import EARLIEST_MS, LATEST_MS

REPLAY_HEADER = "streamtrack-replay"
"""Set by `streamtrack replay` and `streamtrack dlq replay` on what they produce: the worker then
checks every event of the batch against ClickHouse, not its id cache (`worker.dedup`)."""


@dataclasses.dataclass(frozen=True)
class Rejected:
    message: Message
    reason: str
    """Short code: undecodable, invalid_event, record_too_large."""
    detail: str


def decode_records(messages: list[Message], max_record_bytes: int = 0) -> tuple[list[Event], list[Rejected]]:
    events: list[Event] = []
    rejected: list[Rejected] = []
    for message in messages:
        checked = check_value(message.value(), max_record_bytes)
        if isinstance(checked, Event):
            events.append(checked)
        else:
            rejected.append(Rejected(message, *checked))
    return events, rejected


def check_value(value: bytes | None, max_record_bytes: int = 0) -> Event | tuple[str, str]:
    """A record's value as an event, or (reason, detail) of why it cannot be one.

    The one check of the worker, and of `streamtrack dlq replay` (a dead letter is replayed
    only when this accepts it under the settings now in force). `max_record_bytes` 0: no limit.
    """
    if value is None:
        return "undecodable", "the record has no value"
    if max_record_bytes and len(value) > max_record_bytes:
        return "record_too_large", (
            f"the record is {len(value)} bytes; at most {max_record_bytes} are stored (STREAMTRACK_MAX_RECORD_BYTES)"
        )
    try:
        event = decode_event(value)
    except msgspec.ValidationError as exc:
        return "invalid_event", f"not an event: {exc}"
    except (msgspec.DecodeError, RecursionError) as exc:
        return "undecodable", f"not JSON: {exc}"
    problem = storage_problem(event)
    return ("invalid_event", problem) if problem else event


def storage_problem(event: Event) -> str | None:
    """Why the table cannot hold this event, or None."""
    if not event.event_id:
        return "event_id is empty"
    if not event.event_type.strip():
        return "event_type is empty"
    for name in ("timestamp", "received_at"):
        value = getattr(event, name)
        if not EARLIEST_MS <= value < LATEST_MS:
            return f"{name} {value} is outside 2000-01-01 .. 2300-01-01 (epoch milliseconds)"
    return None
