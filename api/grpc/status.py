"""StreamTrack's errors as gRPC statuses: the one mapping, as `streamtrack.api.errors` is for HTTP.

The status message starts with the field at fault ("event_type: missing: ..."); the trailing
metadata carries the HTTP API's `code` (`streamtrack-code`), the field (`streamtrack-field`) and,
for what may pass later, `retry-after` in seconds.
"""

from __future__ import annotations

from typing import NoReturn

import grpc

from streamtrack.errors import ClientError, RetryableError, StreamTrackError

CODE_KEY = "streamtrack-code"
FIELD_KEY = "streamtrack-field"
RETRY_AFTER_KEY = "retry-after"


class RateLimited(ClientError):
    """A key or address over its rate (HTTP 429)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


_BY_HTTP_STATUS = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_of(exc: StreamTrackError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """(code, message, trailing metadata) for one of our errors."""
    if isinstance(exc, RetryableError):
        trailers = ((CODE_KEY, exc.code), (RETRY_AFTER_KEY, str(exc.retry_after)))
        return grpc.StatusCode.UNAVAILABLE, exc.message, trailers
    if isinstance(exc, ClientError):
        code = _BY_HTTP_STATUS.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT)
        trailers: tuple[tuple[str, str], ...] = ((CODE_KEY, exc.code),)
        if exc.field:
            trailers += ((FIELD_KEY, exc.field),)
        if isinstance(exc, RateLimited):
            trailers += ((RETRY_AFTER_KEY, str(exc.retry_after)),)
        return code, f"{exc.field}: {exc.message}" if exc.field else exc.message, trailers
    return grpc.StatusCode.INTERNAL, str(exc), ()


async def abort(context: grpc.aio.ServicerContext, exc: StreamTrackError) -> NoReturn:
    code, message, trailers = status_of(exc)
    await context.abort(code, message, trailing_metadata=trailers)
    raise AssertionError("context.abort returned")  # it always raises
