"""StreamTrack's errors: what went wrong, whose fault it is, and whether to retry.

Client errors carry an HTTP status, a stable machine-readable `code`, a message a person
understands and, where it applies, the `field` at fault. The API maps them to responses in
one place (`streamtrack.api.errors`); the worker maps them to dead-letter reasons.
"""

from __future__ import annotations


class StreamTrackError(Exception):
    """Base of every error StreamTrack raises on purpose."""


class ConfigError(StreamTrackError):
    """A setting is missing or invalid; the process should stop with this message."""


class ClientError(StreamTrackError):
    """The request is wrong; retrying it unchanged will fail again."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"status": self.status, "code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class MalformedBody(ClientError):
    """The body is not the JSON it claims to be."""

    code = "malformed_json"


class InvalidParameter(ClientError):
    """A query parameter has a wrong value."""

    code = "invalid_parameter"


class InvalidEvent(ClientError):
    """Well-formed JSON that is not a valid event (wrong type, missing field, over a limit)."""

    status = 422
    code = "invalid_event"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class Unauthorized(ClientError):
    """No valid key (a missing, unknown or revoked one)."""

    status = 401
    code = "invalid_key"


class WrongKeyKind(ClientError):
    """A valid key of the wrong kind: a read key sent to ingestion, or a write key to a read endpoint."""

    status = 403
    code = "wrong_key_kind"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class RetryableError(StreamTrackError):
    """A dependency is unavailable or slow; the same request may succeed later."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BrokerUnavailable(RetryableError):
    code = "broker_unavailable"


class StoreUnavailable(RetryableError):
    code = "store_unavailable"


class QueryTooLarge(ClientError):
    """A read would scan more rows or bytes than a query may (STREAMTRACK_QUERY_MAX_ROWS/_BYTES):
    the same request fails again, a narrower one (time range, filter) does not."""

    status = 422
    code = "query_too_large"


class QueryLimitExceeded(RetryableError):
    """A read ran out of its time or memory bound (STREAMTRACK_QUERY_MAX_SECONDS/_MEMORY_BYTES):
    it may pass when the store is less busy, or narrowed."""

    code = "query_limit_exceeded"
