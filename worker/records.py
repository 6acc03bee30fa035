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


@dataclasses.dataclass(frozen=True)
class Rejected:
    message: Message
    reason: str
    """Short code: undecodable, invalid_event."""
    detail: str


def decode_records(messages: list[Message]) -> tuple[list[Event], list[Rejected]]:
    events: list[Event] = []
    rejected: list[Rejected] = []
    for message in messages:
        value = message.value()
        if value is None:
            rejected.append(Rejected(message, "undecodable", "the record has no value"))
            continue
        try:
            event = decode_event(value)
        except msgspec.ValidationError as exc:
            rejected.append(Rejected(message, "invalid_event", f"not an event: {exc}"))
            continue
        except (msgspec.DecodeError, RecursionError) as exc:
            rejected.append(Rejected(message, "undecodable", f"not JSON: {exc}"))
            continue
        problem = storage_problem(event)
        if problem:
            rejected.append(Rejected(message, "invalid_event", problem))
        else:
            events.append(event)
    return events, rejected


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
