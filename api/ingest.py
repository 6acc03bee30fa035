"""Ingestion: `POST /track` (one event) and `POST /batch` (many, judged one by one).

Bodies are read raw, not through Litestar's decoder, so that each limit is checked on the
bytes before any parsing and each refusal says exactly what was wrong. A batch is split
into undecoded items first; a bad item is reported at its index and the rest go on.
Nothing is answered 202 before the broker acknowledged it.
"""

from __future__ import annotations

from collections import Counter

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from streamtrack.api.auth import project_of
from streamtrack.api.errors import INGEST_ERRORS
from streamtrack.api.openapi import BatchOperation, TrackOperation
from streamtrack.api.services import Services
from streamtrack.errors import ClientError, PayloadTooLarge, RetryableError, UnsupportedMediaType
from streamtrack.events import Event
from streamtrack.normalize import RequestContext, normalize_raw, split_batch
from streamtrack.telemetry.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from streamtrack.timestamps import now_ms

JSON_TYPES = {"", "application/json", "text/plain"}  # text/plain: what navigator.sendBeacon sends


class Accepted(msgspec.Struct):
    event_id: str


class ItemResult(msgspec.Struct, omit_defaults=True):
    index: int
    status: str
    """accepted | rejected (fix the event) | failed (retry later, same event_id)"""
    event_id: str | None = None
    code: str | None = None
    message: str | None = None
    field: str | None = None


class BatchResult(msgspec.Struct):
    accepted: int
    rejected: int
    failed: int
    results: list[ItemResult]


_BATCH_REJECTED = ResponseSpec(BatchResult, description="No event was valid; see each result.", generate_examples=False)
_BATCH_FAILED = ResponseSpec(
    BatchResult, description="The broker took none of the valid events; retry them after Retry-After.",
    generate_examples=False,
)


async def _read_json_body(request: Request, max_bytes: int) -> bytes:
    media_type = request.content_type[0].lower()
    if media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as application/json (or text/plain holding JSON), not {media_type}", field="Content-Type"
        )
    body = await request.body()
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; at most {max_bytes} are accepted here")
    if not body.strip():
        raise ClientError("the body is empty; send a JSON event", code="empty_body")
    return body


def metrics_project(request: Request) -> str:
    """The `project` label of the event counters: the key's project, '' before a key was checked
    (a Segment body's writeKey). Bounded: only projects that have keys ever appear."""
    try:
        return project_of(request)
    except RuntimeError:
        return ""


def _context(request: Request) -> RequestContext:
    return RequestContext(
        received_at=now_ms(),
        ip=request.client.host if request.client else "",  # anonymised by the auth gate when configured
        user_agent=request.headers.get("user-agent", ""),
        project_id=project_of(request),
    )


@post(
    "/track", status_code=202, operation_class=TrackOperation, tags=["ingest"], summary="Track one event",
    responses=INGEST_ERRORS,
)
async def track(request: Request, services: NamedDependency[Services]) -> Accepted:
    """Validate one event, produce it to Kafka and answer once the broker acknowledged it."""
    try:
        body = await _read_json_body(request, services.limits.max_event_bytes)
        event = normalize_raw(body, _context(request), services.limits)
        await services.producer.send(event)
    except (ClientError, RetryableError) as exc:
        EVENTS_REJECTED.labels(exc.code, metrics_project(request)).inc()
        raise
    EVENTS_ACCEPTED.labels(project_of(request)).inc()
    return Accepted(event_id=event.event_id)


@post(
    "/batch", status_code=202, operation_class=BatchOperation, tags=["ingest"], summary="Track many events",
    responses={**INGEST_ERRORS, 422: _BATCH_REJECTED, 503: _BATCH_FAILED},
)
async def batch(request: Request, services: NamedDependency[Services]) -> Response[BatchResult]:
    """Each event is accepted or rejected on its own; see `results` for which and why."""
    settings = services.settings
    try:
        body = await _read_json_body(request, settings.max_batch_bytes)
        items = split_batch(body, max_events=settings.max_batch_events)
    except ClientError as exc:
        EVENTS_REJECTED.labels(exc.code, metrics_project(request)).inc()
        raise
    context = _context(request)
    results: list[ItemResult] = []
    events: list[tuple[int, Event]] = []
    for index, raw in enumerate(items):
        try:
            events.append((index, normalize_raw(raw, context, services.limits)))
        except ClientError as exc:
            results.append(ItemResult(index, "rejected", code=exc.code, message=exc.message, field=exc.field))
    outcomes = await services.producer.send_many([event for _, event in events])
    retry_after = 0
    for (index, event), outcome in zip(events, outcomes, strict=True):
        if outcome is None:
            results.append(ItemResult(index, "accepted", event_id=event.event_id))
        else:
            retry_after = max(retry_after, outcome.retry_after)
            results.append(ItemResult(index, "failed", event_id=event.event_id, code=outcome.code, message=outcome.message))
    results.sort(key=lambda r: r.index)
    EVENTS_ACCEPTED.labels(context.project_id).inc(sum(r.status == "accepted" for r in results))
    for code, count in Counter(r.code for r in results if r.status != "accepted").items():
        EVENTS_REJECTED.labels(code or "unknown", context.project_id).inc(count)
    counts = {status: sum(r.status == status for r in results) for status in ("accepted", "rejected", "failed")}
    result = BatchResult(results=results, **counts)
    if counts["accepted"]:
        return Response(result, status_code=202)
    if counts["failed"]:
        return Response(result, status_code=503, headers={"Retry-After": str(retry_after or 1)})
    return Response(result, status_code=422)

