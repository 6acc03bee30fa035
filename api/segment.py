"""The Segment HTTP Tracking API: `/v1/track`, `/identify`, `/page`, `/screen`, `/group`,
`/alias`, `/batch` (and `/import`, its older name), so apps using Segment's or RudderStack's
SDKs switch to StreamTrack by changing their host.

Answers as Segment does, because the SDKs act on the status: `200 {"success": true}` once
the broker acknowledged every valid message; `400` for what retrying cannot fix (size,
JSON, a missing field), which the SDKs drop; `503` + `Retry-After` when the broker did not
acknowledge, which the SDKs retry with the same messageIds, stored once. A batch with some
invalid messages stores the valid ones and lists the others in its 200 answer (Segment
accepts such a batch and drops them silently). Translation lives in `streamtrack.segment`;
producing is the same path as /track, so traces, metrics and backpressure come with it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from streamtrack.api.auth import KEY_HEADER, authenticate_body_key, key_from_headers
from streamtrack.api.errors import ErrorBody
from streamtrack.api.ingest import JSON_TYPES, _context, metrics_project
from streamtrack.api.services import Services
from streamtrack.errors import ClientError, RetryableError
from streamtrack.events import Event
from streamtrack.segment import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    MissingWriteKey,
    SegmentError,
    decode_message,
    decompress,
    parse_sent_at,
    split_batch,
    to_event,
    write_key,
)
from streamtrack.telemetry.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED


class Rejected(msgspec.Struct, omit_defaults=True):
    index: int
    code: str
    message: str
    field: str | None = None


class Success(msgspec.Struct, omit_defaults=True):
    success: bool  # no default, so always sent
    rejected: list[Rejected] = msgspec.field(default_factory=list)
    """Batch messages that were invalid (not stored); the others were."""


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_RESPONSES = {
    400: _error("Not JSON, over Segment's limits (32 KB a message, 500 KB a batch) or an invalid message."),
    401: _error("No write key: send it as the HTTP Basic user name, as a Bearer token, in X-StreamTrack-Key, "
                "or as `writeKey` in the body."),
    503: _error("The broker did not acknowledge in time; retry with the same messageIds after Retry-After."),
}


_S, _O, _A = OpenAPIType.STRING, OpenAPIType.OBJECT, OpenAPIType.ARRAY
_MESSAGE = Schema(
    type=_O,
    description=(
        "A Segment message (segment.com/docs/connections/sources/catalog/libraries/server/http-api). "
        "userId or anonymousId is required; track needs `event`, group `groupId`, alias `previousId` and `userId`. "
        "`timestamp` with `sentAt` is corrected for the device's clock."
    ),
    properties={
        "type": Schema(
            type=_S,
            enum=["track", "page", "screen", "identify", "group", "alias"],
            description="In a batch; on /v1/<type> the path says it.",
        ),
        "messageId": Schema(
            type=_S, description="Deduplication key: a retry with the same id is stored once."
        ),
        "userId": Schema(type=_S),
        "anonymousId": Schema(type=_S),
        "event": Schema(type=_S),
        "name": Schema(type=_S),
        "category": Schema(type=_S),
        "properties": Schema(type=_O),
        "traits": Schema(type=_O),
        "context": Schema(type=_O),
        "groupId": Schema(type=_S),
        "previousId": Schema(type=_S),
        "timestamp": Schema(type=_S, description="ISO 8601: when the call was made, by the device's clock."),
        "sentAt": Schema(type=_S, description="ISO 8601: when the device sent it, by the same clock."),
    },
)
_TRACK_EXAMPLE = {
    "userId": "u-42",
    "event": "Order Completed",
    "properties": {"revenue": 42.5},
    "messageId": "5f1c0a9e-example",
    "timestamp": "2026-01-31T12:00:00Z",
}


def _json_body(schema: Schema, example: object, description: str) -> RequestBody:
    content = OpenAPIMediaType(schema=schema, examples={"example": Example(value=example)})
    return RequestBody(required=True, description=description, content={"application/json": content})


@dataclass
class SegmentCallOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(_MESSAGE, _TRACK_EXAMPLE, "One message, at most 32 KB; gzip allowed.")


@dataclass
class SegmentBatchOperation(Operation):
    def __post_init__(self) -> None:
        batch = Schema(
            type=_O,
            required=["batch"],
            properties={
                "batch": Schema(type=_A, items=_MESSAGE, max_items=2500),
                "sentAt": Schema(type=_S),
                "writeKey": Schema(type=_S),
            },
        )
        example = {"batch": [{"type": "track", **_TRACK_EXAMPLE}], "sentAt": "2026-01-31T12:00:01Z"}
        self.request_body = _json_body(batch, example, "Messages of any type, at most 500 KB; gzip allowed.")


async def _read(request: Request, max_bytes: int) -> bytes:
    """The body, uncompressed and within `max_bytes`; every refusal a 400 as Segment answers."""
    media_type = request.content_type[0].lower()
    if media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise SegmentError(
            f"send the body as application/json, not {media_type}",
            field="Content-Type",
            code="unsupported_media_type",
        )
    body = decompress(await request.body(), request.headers.get("content-encoding", ""), max_bytes)
    if len(body) > max_bytes:
        raise SegmentError(
            f"the body is {len(body)} bytes; Segment's limit here is {max_bytes}", code="payload_too_large"
        )
    if not body.strip():
        raise SegmentError("the body is empty; send a JSON message", code="empty_body")
    return body


def sent_key(request: Request, body_key: object) -> str | None:
    """The key in any form docs/operations/security.md lists: Bearer, HTTP Basic's user name,
    X-StreamTrack-Key, `?key=` (as on /track), else Segment's `writeKey` in the body."""
    authorization = request.headers.get("authorization")
    segment_key = write_key(authorization, body_key)  # a malformed Basic header: 401 naming it
    headers = {"authorization": authorization or "", KEY_HEADER: request.headers.get(KEY_HEADER, "")}
    return key_from_headers(headers) or request.query_params.get("key") or segment_key


async def _authenticate(request: Request, body_key: object) -> None:
    if sent_key(request, body_key) is None:
        raise MissingWriteKey(
            "no write key: send it as the HTTP Basic user name (Authorization: Basic base64('KEY:')), "
            "'Authorization: Bearer KEY', 'X-StreamTrack-Key', or as 'writeKey' in the body",
            field="writeKey",
        )
    await authenticate_body_key(request, body_key)  # auth on and no key in the headers: the body's writeKey


@post(
    ["/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias"],
    status_code=200,
    operation_class=SegmentCallOperation,
    tags=["segment"],
    summary="One Segment call",
    responses=_RESPONSES,
)
async def segment_call(request: Request, services: NamedDependency[Services]) -> Success:
    """One Segment call; the path names its type. 200 once the broker acknowledged it."""
    call_type = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    try:
        message = decode_message(await _read(request, MAX_MESSAGE_BYTES))
        await _authenticate(request, message.get("writeKey"))
        event = to_event(message, call_type, _context(request), services.limits)
        await services.producer.send(event)
    except (ClientError, RetryableError) as exc:
        EVENTS_REJECTED.labels(exc.code, metrics_project(request)).inc()
        raise
    EVENTS_ACCEPTED.labels(metrics_project(request)).inc()
    return Success(success=True)


@post(
    ["/v1/batch", "/v1/import"],
    status_code=200,
    operation_class=SegmentBatchOperation,
    tags=["segment"],
    summary="A Segment batch",
    responses=_RESPONSES,
)
async def segment_batch(request: Request, services: NamedDependency[Services]) -> Response[Success]:
    """Many calls of any type. 200 once the broker acknowledged every valid one; invalid ones listed."""
    try:
        batch = split_batch(
            await _read(request, MAX_BATCH_BYTES), max_messages=services.settings.max_batch_events
        )
        await _authenticate(request, batch.writeKey)
        sent_ms = parse_sent_at(batch.sentAt)
    except ClientError as exc:
        EVENTS_REJECTED.labels(exc.code, metrics_project(request)).inc()
        raise
    context = _context(request)
    events: list[Event] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(batch.batch):
        try:
            events.append(
                to_event(decode_message(raw), None, context, services.limits, batch_sent_ms=sent_ms)
            )
        except SegmentError as exc:
            field = f"batch[{index}].{exc.field}" if exc.field else f"batch[{index}]"
            rejected.append(Rejected(index, exc.code, exc.message, field))
    for code, count in Counter(r.code for r in rejected).items():
        EVENTS_REJECTED.labels(code, context.project_id).inc(count)
    if not events:
        first = rejected[0]
        raise SegmentError(
            f"no valid message in the batch; first: {first.message}", field=first.field, code=first.code
        )
    failures = [outcome for outcome in await services.producer.send_many(events) if outcome is not None]
    if failures:
        # Segment's SDKs retry the whole batch: the acknowledged messages come again with the
        # same messageIds and the worker stores them once.
        EVENTS_REJECTED.labels(failures[0].code, context.project_id).inc(len(failures))
        raise failures[0]
    EVENTS_ACCEPTED.labels(context.project_id).inc(len(events))
    return Response(Success(success=True, rejected=rejected), status_code=200)


SEGMENT_HANDLERS = [segment_call, segment_batch]
