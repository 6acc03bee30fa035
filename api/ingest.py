"""Ingestion over HTTP: `POST /track` (one event) and `POST /batch` (many, judged one by one).

Bodies are read raw, not through Litestar's decoder, so that each limit is checked on the
bytes before any parsing and each refusal says exactly what was wrong. A batch is split
into undecoded items first; a bad item is reported at its index and the rest go on.
Nothing is answered 202 before the broker acknowledged it. The work itself is
`streamtrack.api.accept`'s; these handlers only read the request and shape the answer, and
take as little from Litestar as they can (no dependency injection, one pass over the
headers): they are the API's hottest paths (bench/ingest.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec

from streamtrack.api.accept import BatchResult, ItemResult, accept_one, accept_raw_batch
from streamtrack.api.auth import PROJECT_SCOPE_KEY
from streamtrack.api.errors import INGEST_ERRORS
from streamtrack.api.openapi import BatchOperation, TrackOperation
from streamtrack.api.services import Services
from streamtrack.errors import ClientError, PayloadTooLarge, RetryableError, UnsupportedMediaType
from streamtrack.normalize import RequestContext, split_batch
from streamtrack.telemetry.metrics import EVENTS_REJECTED
from streamtrack.timestamps import now_ms

__all__ = ["Accepted", "BatchResult", "ItemResult", "batch", "track"]

JSON_TYPES = {"", "application/json", "text/plain"}  # text/plain: what navigator.sendBeacon sends
SERVICES_STATE_KEY = "services"
"""Where `create_app` keeps the Services for these handlers (app.state), instead of a dependency."""


class Accepted(msgspec.Struct):
    event_id: str


_BATCH_REJECTED = ResponseSpec(BatchResult, description="No event was valid; see each result.", generate_examples=False)
_BATCH_FAILED = ResponseSpec(
    BatchResult, description="The broker took none of the valid events; retry them after Retry-After.",
    generate_examples=False,
)


def _headers(request: Request[Any, Any, Any]) -> tuple[str, str]:
    """The media type (lower case, no parameters) and the user agent, in one pass over the raw headers."""
    media_type = user_agent = ""
    for name, value in request.scope["headers"]:
        name = name.lower()
        if name == b"content-type":
            media_type = value.decode("latin-1").partition(";")[0].strip().lower()
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
    return media_type, user_agent


async def _read_json_body(request: Request[Any, Any, Any], media_type: str, max_bytes: int) -> bytes:
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


def metrics_project(request: Request[Any, Any, Any]) -> str:
    """The `project` label of the event counters: the key's project, '' before a key was checked
    (a Segment body's writeKey). Bounded: only projects that have keys ever appear."""
    project = request.scope.get(PROJECT_SCOPE_KEY)  # type: ignore[call-overload]
    return project if isinstance(project, str) else ""


def _context(request: Request[Any, Any, Any], user_agent: str | None = None) -> RequestContext:
    """What the server knows about the request (`user_agent`: already read from the headers, else read here)."""
    if user_agent is None:
        user_agent = request.headers.get("user-agent", "")
    project = request.scope.get(PROJECT_SCOPE_KEY)  # type: ignore[call-overload]
    if not isinstance(project, str) or not project:
        raise RuntimeError("the auth gate did not run for this request")  # a wiring bug, not the client's
    client = request.scope.get("client")
    return RequestContext(
        received_at=now_ms(),
        ip=client[0] if client else "",  # anonymised by the auth gate when configured
        user_agent=user_agent,
        project_id=project,
    )


@post(
    "/track", status_code=202, operation_class=TrackOperation, tags=["ingest"], summary="Track one event",
    responses=INGEST_ERRORS,
)
async def track(request: Request[Any, Any, Any]) -> Accepted:
    """Validate one event, produce it to Kafka and answer once the broker acknowledged it."""
    services: Services = request.app.state[SERVICES_STATE_KEY]
    media_type, user_agent = _headers(request)
    try:
        body = await _read_json_body(request, media_type, services.limits.max_event_bytes)
        event = await accept_one(services, body, _context(request, user_agent))
    except (ClientError, RetryableError) as exc:
        EVENTS_REJECTED.labels(exc.code, metrics_project(request)).inc()
        raise
    return Accepted(event_id=event.event_id)


@post(
    "/batch", status_code=202, operation_class=BatchOperation, tags=["ingest"], summary="Track many events",
    responses={**INGEST_ERRORS, 422: _BATCH_REJECTED, 503: _BATCH_FAILED},
)
async def batch(request: Request[Any, Any, Any]) -> Response[BatchResult]:
    """Each event is accepted or rejected on its own; see `results` for which and why."""
    services: Services = request.app.state[SERVICES_STATE_KEY]
    settings = services.settings
    media_type, user_agent = _headers(request)
    try:
        body = await _read_json_body(request, media_type, settings.max_batch_bytes)
        items = split_batch(body, max_events=settings.max_batch_events)
    except ClientError as exc:
        EVENTS_REJECTED.labels(exc.code, metrics_project(request)).inc()
        raise
    result, retry_after = await accept_raw_batch(services, items, _context(request, user_agent))
    if result.accepted:
        return Response(result, status_code=202)
    if result.failed:
        return Response(result, status_code=503, headers={"Retry-After": str(retry_after or 1)})
    return Response(result, status_code=422)
