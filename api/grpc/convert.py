"""From a protobuf `Event` to the canonical event, through the same normalisation as HTTP.

The message's fields carry the canonical names, so it becomes the dict `normalize` takes and every
rule and limit applies unchanged, with the same field names in the errors. What protobuf adds:
- an empty string is "not given" (proto3 has no presence for strings);
- `timestamp` is a google.protobuf.Timestamp, checked here as HTTP checks epoch milliseconds
  (`normalize`'s epoch-seconds guess would misread milliseconds before 1973);
- `properties` is a google.protobuf.Struct, whose numbers are all doubles: a whole number within
  ±2^53 becomes an integer again, as it was in the JSON the client meant; NaN and infinity are refused;
- the size limit counts the event's serialized bytes.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2

from streamtrack.api.grpc import event_pb2
from streamtrack.errors import InvalidEvent, PayloadTooLarge
from streamtrack.events import Event
from streamtrack.normalize import Limits, RequestContext, normalize
from streamtrack.timestamps import check_event_time

TEXT_FIELDS = (
    "event_type", "user_id", "anonymous_id", "session_id", "event_id", "url", "referrer", "channel", "campaign_id",
)
EXACT_INTEGERS = 2**53


def to_event(message: event_pb2.Event, context: RequestContext, limits: Limits) -> Event:
    """The canonical event, or the ClientError HTTP would raise for the same event."""
    size = message.ByteSize()
    if size > limits.max_event_bytes:
        raise PayloadTooLarge(
            f"the event is {size} bytes serialized; at most {limits.max_event_bytes} are accepted", code="event_too_large"
        )
    data: dict[str, Any] = {name: value for name in TEXT_FIELDS if (value := getattr(message, name))}
    if message.HasField("timestamp"):
        ms = message.timestamp.seconds * 1000 + message.timestamp.nanos // 1_000_000
        try:
            check_event_time(ms, context.received_at)
        except ValueError as exc:
            raise InvalidEvent(str(exc), field="timestamp") from None
        data["timestamp"] = ms
    if message.tags:
        data["tags"] = list(message.tags)
    if message.HasField("properties"):
        data["properties"] = {key: _value(value, f"properties.{key}") for key, value in message.properties.fields.items()}
    return normalize(data, context, limits)


def _value(value: struct_pb2.Value, path: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {key: _value(child, f"{path}.{key}") for key, child in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_value(child, f"{path}[{i}]") for i, child in enumerate(value.list_value.values)]
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidEvent("expected a finite number", field=path)
        return int(number) if number.is_integer() and abs(number) <= EXACT_INTEGERS else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None  # null_value, or no kind set
