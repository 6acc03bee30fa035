"""The Segment HTTP Tracking API, translated into StreamTrack's canonical events.

Pure translation, no I/O: `streamtrack.api.segment` reads the requests and produces what
this returns. Every Segment call becomes one canonical `Event` on the events topic, so it
gets what `/track` gets: broker acknowledgement before success, dedup by `messageId` (the
event id), dead letters, traces and metrics. The call type decides the event type:

- `track` -> the event's name; `page` -> `page_view` and `screen` -> `screen_view`, so
  top pages, sessions and funnels count Segment pages like native ones;
- `identify`, `group`, `alias` -> `$identify`, `$group`, `$alias` (the `$` marks names
  StreamTrack reserves, as PostHog does): they are events like the others (visible in
  /activities), and the worker also turns them into identity records
  (`streamtrack.identities`).

The message is first rewritten into the canonical field names and then checked by
`streamtrack.normalize` itself, so Segment events obey exactly the limits of /track.
Segment-only data is kept, not dropped: page `name`/`category` and the call's traits go
into properties, Segment's `context` into `properties["$context"]`, unknown top-level
fields into `properties["$extra"]`. Never stored: `writeKey`, `integrations` (routing for
Segment's destinations) and the SDK's own `_metadata`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import zlib
from typing import Any

import msgspec

from streamtrack.errors import ClientError, InvalidEvent, MalformedBody
from streamtrack.events import Event
from streamtrack.normalize import Limits, RequestContext, decode_json, normalize, not_utf8
from streamtrack.timestamps import parse_time

MAX_MESSAGE_BYTES = 32 * 1024
"""Segment's limit per call (and per message of a batch): 32 KB."""
MAX_BATCH_BYTES = 500 * 1024
"""Segment's limit per batch request: 500 KB (of JSON, after gzip is undone)."""

IDENTIFY, GROUP, ALIAS = "$identify", "$group", "$alias"
CALL_TYPES = ("track", "page", "screen", "identify", "group", "alias")
_EVENT_TYPES = {
    "page": "page_view",
    "screen": "screen_view",
    "identify": IDENTIFY,
    "group": GROUP,
    "alias": ALIAS,
}

# Top-level message fields that are mapped to a canonical field or deliberately not stored.
_HANDLED = frozenset(
    {
        "type",
        "messageId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "receivedAt",
        "userId",
        "anonymousId",
        "event",
        "name",
        "category",
        "properties",
        "traits",
        "context",
        "groupId",
        "previousId",
        "writeKey",
        "integrations",
        "_metadata",
    }
)
# Canonical field -> the Segment field a client should fix, for error messages.
_SEGMENT_FIELD = {
    "event_type": "event",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "event_id": "messageId",
    "url": "context.page.url",
    "referrer": "context.page.referrer",
    "session_id": "context.sessionId",
    "campaign_id": "context.campaign.name",
    "channel": "context.campaign.medium",
}


class MissingWriteKey(ClientError):
    """No write key, or an unreadable one: Segment's API answers 401 too."""

    status = 401
    code = "unauthorized"


class SegmentError(ClientError):
    """Segment answers 400 to every bad request (size, JSON, missing field); so do we on /v1."""

    status = 400

    @classmethod
    def of(cls, exc: ClientError) -> SegmentError:
        """The same code and message as `exc`, status 400, the field named as Segment names it."""
        field = exc.field if exc.field is None else _SEGMENT_FIELD.get(exc.field, exc.field)
        return cls(exc.message, field=field, code=exc.code)


def write_key(authorization: str | None, body_key: Any) -> str | None:
    """Segment's forms of the write key: HTTP Basic's user name, else `writeKey` from the body.

    The API also takes the other forms docs/operations/security.md lists (`streamtrack.api.segment.sent_key`);
    the key is never logged or stored.
    """
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                raise MissingWriteKey(
                    "the Authorization header is not valid HTTP Basic", field="Authorization"
                ) from None
            if user:
                return user
    if isinstance(body_key, str) and body_key:
        return body_key
    return None


def decompress(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    """The body with its Content-Encoding (gzip, deflate or none) undone, refusing to grow past `max_bytes`.

    Inflating at most `max_bytes + 1` bytes keeps a small "zip bomb" from taking memory.
    """
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise SegmentError(
            f"Content-Encoding {encoding!r} is not supported; send gzip or none",
            field="Content-Encoding",
            code="unsupported_encoding",
        )
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise SegmentError(
            f"the body is not valid {encoding}: {exc}", field="Content-Encoding", code="malformed_body"
        ) from None
    if len(data) > max_bytes:
        raise SegmentError(f"the uncompressed body is over {max_bytes} bytes", code="payload_too_large")
    if not inflater.eof:
        raise SegmentError(
            f"the {encoding} body is truncated", field="Content-Encoding", code="malformed_body"
        )
    return data


class Batch(msgspec.Struct):
    """A `/v1/batch` body, its messages undecoded so each is sized and judged on its own."""

    batch: list[msgspec.Raw]
    sentAt: Any = None  # noqa: N815 (Segment's names)
    writeKey: Any = None  # noqa: N815


def split_batch(body: bytes, *, max_messages: int) -> Batch:
    """The batch of a `/v1/batch` body, with at least one and at most `max_messages` messages."""
    try:
        parsed = msgspec.json.decode(body, type=Batch)
    except RecursionError:
        raise SegmentError.of(MalformedBody("the JSON is nested too deeply")) from None
    except msgspec.ValidationError as exc:
        raise SegmentError(
            f"a batch is an object with a 'batch' array of messages ({exc})",
            field="batch",
            code="invalid_event",
        ) from None
    except msgspec.DecodeError as exc:
        raise SegmentError(f"the body is not valid JSON: {exc}", code="malformed_json") from None
    except UnicodeDecodeError as exc:
        raise SegmentError.of(not_utf8(exc)) from None
    if not parsed.batch:
        raise SegmentError("the batch has no messages", field="batch", code="invalid_event")
    if len(parsed.batch) > max_messages:
        raise SegmentError(
            f"the batch has {len(parsed.batch)} messages; at most {max_messages} are accepted",
            field="batch",
            code="payload_too_large",
        )
    return parsed


def decode_message(raw: bytes | msgspec.Raw) -> dict[str, Any]:
    """One message's JSON, checked against Segment's 32 KB limit first."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise SegmentError(
            f"the message is {len(raw)} bytes; Segment's limit is {MAX_MESSAGE_BYTES} per call",
            code="payload_too_large",
        )
    try:
        data = decode_json(bytes(raw))
    except ClientError as exc:
        raise SegmentError.of(exc) from None
    if not isinstance(data, dict):
        raise SegmentError("a message is a JSON object", code="invalid_event")
    return data


def to_event(
    message: dict[str, Any],
    call_type: str | None,
    context: RequestContext,
    limits: Limits,
    *,
    batch_sent_ms: int | None = None,
) -> Event:
    """The canonical event of one Segment message; `call_type` from the path, else the message's `type`.

    `batch_sent_ms`: the batch's `sentAt` (`parse_sent_at`), for messages without their own.
    Raises SegmentError (400) naming the Segment field at fault.
    """
    kind = call_type or message.get("type")
    if kind not in CALL_TYPES:
        raise SegmentError(
            f"'type' must be one of {', '.join(CALL_TYPES)}, got {kind!r}", field="type", code="invalid_event"
        )
    segment_context = message.get("context") or {}
    if not isinstance(segment_context, dict):
        raise SegmentError("expected a JSON object", field="context", code="invalid_event")
    try:
        canonical = _canonical(message, kind, segment_context, context.received_at, batch_sent_ms)
        request = dataclasses.replace(  # replace, not rebuild: whatever else the server knows carries over
            context,
            ip=_text(segment_context.get("ip")) or context.ip,
            user_agent=_text(segment_context.get("userAgent")) or context.user_agent,
        )
        return normalize(canonical, request, limits)
    except ClientError as exc:
        raise SegmentError.of(exc) from None


def _canonical(
    message: dict[str, Any], kind: str, context: dict[str, Any], received_at: int, batch_sent_ms: int | None
) -> dict:
    """The message in /track's field names; `normalize` then checks every value."""
    page = context.get("page") if isinstance(context.get("page"), dict) else {}
    campaign = context.get("campaign") if isinstance(context.get("campaign"), dict) else {}
    properties = _object(message, "properties")
    event: dict[str, Any] = {
        "event_id": message.get("messageId"),
        "user_id": message.get("userId"),
        "anonymous_id": message.get("anonymousId"),
        "timestamp": event_time(message, received_at, batch_sent_ms),
        "url": properties.get("url") or page.get("url"),
        "referrer": properties.get("referrer") or page.get("referrer"),
        "session_id": context.get("sessionId"),
        "campaign_id": campaign.get("name"),
        "channel": campaign.get("medium"),
    }
    if kind == "track":
        if not isinstance(message.get("event"), str):
            raise InvalidEvent("a track call needs the event's name as a string", field="event")
        event["event_type"] = message["event"]
    else:
        event["event_type"] = _EVENT_TYPES[kind]
    if kind in ("page", "screen"):
        for key in ("name", "category"):
            if message.get(key) is not None and key not in properties:
                properties[key] = message[key]
    elif kind in ("identify", "group"):
        traits = _object(message, "traits")
        if kind == "identify" and "traits" not in message and isinstance(context.get("traits"), dict):
            traits = dict(context["traits"])  # RudderStack's SDKs send identify traits there
        properties["traits"] = traits
        if kind == "group":
            properties["group_id"] = _required_id(message, "groupId")
    elif kind == "alias":
        properties["previous_id"] = _required_id(message, "previousId")
        if not message.get("userId"):
            raise InvalidEvent("an alias call needs the new 'userId'", field="userId")
    if context:
        properties["$context"] = context
    extra = {key: value for key, value in message.items() if key not in _HANDLED}
    if extra:
        properties["$extra"] = extra
    event["properties"] = properties
    return {key: value for key, value in event.items() if value is not None}


def parse_sent_at(value: Any) -> int | None:
    """A batch's `sentAt` as epoch ms (None when absent), parsed once for all its messages."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise SegmentError(str(exc), field="sentAt", code="invalid_event") from None


def event_time(message: dict[str, Any], received_at: int, batch_sent_ms: int | None = None) -> int:
    """When the call happened, corrected for the client's clock as Segment does.

    timestamp = receivedAt - (sentAt - originalTimestamp): the client's clock is trusted only
    for the interval between the call and the upload, our clock for the rest. Without
    `sentAt` the message's timestamp is taken as it is; without a timestamp, receipt time.
    """
    original = message.get("timestamp", message.get("originalTimestamp"))
    if original is None:
        return received_at
    try:
        original_ms = parse_time(original)
    except ValueError as exc:
        raise InvalidEvent(str(exc), field="timestamp") from None
    sent_ms = batch_sent_ms
    if message.get("sentAt") is not None:
        try:
            sent_ms = parse_time(message["sentAt"])
        except ValueError as exc:
            raise InvalidEvent(str(exc), field="sentAt") from None
    if sent_ms is None:
        return original_ms
    return received_at - (sent_ms - original_ms)


def _object(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent("expected a JSON object", field=key)
    return dict(value)


def _required_id(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("missing: give it as a non-empty string", field=key)
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
