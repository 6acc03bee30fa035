"""One error shape for every failure: `{"status", "code", "message", "field"?}`.

Our own errors carry their status and code; Litestar's (unknown route, wrong method,
bad query parameter, body too large) are translated into the same shape, so a client
parses one format. Retryable errors add `Retry-After`. Anything unexpected is logged
with its traceback and answered with a plain 500 that leaks nothing.
"""

from __future__ import annotations

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from streamtrack.errors import ClientError, RetryableError

log = structlog.get_logger(__name__)

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type", 429: "too_many_requests",
}


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """What every error answers (documentation model for the OpenAPI document)."""

    status: int
    code: str
    """Stable, machine-readable: malformed_json, invalid_event, payload_too_large, broker_unavailable, ..."""
    message: str
    """For a person: what was wrong, and where."""
    field: str | None = None
    """The field or parameter at fault, when there is one."""
    retry_after: int | None = None
    """Seconds to wait before retrying (429 and 503; also in the Retry-After header)."""


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


INGEST_ERRORS = {
    400: _spec("The body is not JSON, is empty or nests too deeply."),
    413: _spec("The body, an event or the number of events is over its limit."),
    415: _spec("The content type is not JSON (application/json, *+json or text/plain)."),
    422: _spec("Valid JSON that is not a valid event; `field` names the problem."),
    503: _spec("The broker did not acknowledge in time; retry with the same event_id after Retry-After."),
}
QUERY_ERRORS = {
    400: _spec("A query parameter is invalid; `field` names it."),
    422: _spec("query_too_large: the query would read more rows than one may (STREAMTRACK_QUERY_MAX_ROWS); narrow it."),
    429: _spec("This key has its most reads running at once, or is over its rate; retry after Retry-After."),
    503: _spec("query_limit_exceeded (the query's time or memory bound) or the store is unavailable; retry after Retry-After."),
}


def _json(body: dict[str, object], status: int, headers: dict[str, str] | None = None) -> Response[dict[str, object]]:
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def client_error(_: Request, exc: ClientError) -> Response[dict[str, object]]:
    return _json(exc.to_dict(), exc.status)


def retryable_error(request: Request, exc: RetryableError) -> Response[dict[str, object]]:
    log.warning("dependency unavailable", path=request.url.path, code=exc.code, error=exc.message)
    body = {"status": exc.status, "code": exc.code, "message": exc.message, "retry_after": exc.retry_after}
    return _json(body, exc.status, {"Retry-After": str(exc.retry_after)})


def validation_error(_: Request, exc: ValidationException) -> Response[dict[str, object]]:
    """Litestar's parameter validation, e.g. `limit=abc`."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    field = first.get("key")
    message = first.get("message") or exc.detail
    body: dict[str, object] = {"status": 400, "code": "invalid_parameter", "message": f"{message}"}
    if field:
        body["field"] = field
    return _json(body, 400)


def http_error(_: Request, exc: HTTPException) -> Response[dict[str, object]]:
    status = exc.status_code
    if status >= 500:
        log.error("server error", status=status, detail=exc.detail)
        return _json({"status": status, "code": "internal_error", "message": "internal server error"}, status)
    if status == 413:
        message = "the request body is larger than this endpoint accepts"
    else:
        message = exc.detail
    return _json({"status": status, "code": _CODES.get(status, "client_error"), "message": message}, status, exc.headers)


def unexpected_error(request: Request, exc: Exception) -> Response[dict[str, object]]:
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return _json({"status": 500, "code": "internal_error", "message": "internal server error"}, 500)


EXCEPTION_HANDLERS = {
    ClientError: client_error,
    RetryableError: retryable_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
