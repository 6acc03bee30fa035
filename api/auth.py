"""The API's gate: which project a request speaks for, rate limits, and CORS on ingestion.

It wraps the ASGI app (inside the request telemetry, so refusals are counted and logged)
and runs before routing, so no handler runs for a refused request. Paths fall in three
classes:
- ingestion (`POST /track`, `/batch`, Segment's `/v1/*`): a write key (public) — or a read
  key, which is not accepted here (403): a secret key has no business in a web page;
- public (`/healthz`, `/readyz`, the API docs, the dashboard's static page): no key;
- instance-wide (`/metrics`: every project's counters): an admin key (`sta_...`), which is what
  Prometheus scrapes with (the chart's ServiceMonitor takes it from a Secret);
- everything else (activities, analytics, pipeline status, profiles, erasure, dev control):
  a read key (secret), or an admin key, which also sees instance-wide figures; a write key gets 403.
The key travels as `Authorization: Bearer KEY`, HTTP Basic with the key as user name (what
Segment's and RudderStack's SDKs send), `X-StreamTrack-Key: KEY`, or — on ingestion only, for
`navigator.sendBeacon`, which cannot set headers — `?key=KEY`. The project found is put in
the ASGI scope; handlers read it with `project_of(request)`, never from a parameter.
Reads (`/analytics/*`, `/activities`) are also limited in how many one key runs at once
(`streamtrack.api.read_limits`). With STREAMTRACK_AUTH=off every request is the default
project and nothing is limited.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from streamtrack.api.read_limits import QuerySlots, is_bounded_read
from streamtrack.auth.keys import READ_KINDS, KeyKind
from streamtrack.auth.privacy import anonymize_ip
from streamtrack.auth.ratelimit import RateLimiter, retry_after_seconds
from streamtrack.auth.resolver import KeyResolver
from streamtrack.config import Settings
from streamtrack.errors import StoreUnavailable, Unauthorized, WrongKeyKind
from streamtrack.store import EventStore
from streamtrack.telemetry import metrics

PROJECT_SCOPE_KEY = "streamtrack.project"
KIND_SCOPE_KEY = "streamtrack.key_kind"
KEY_ID_SCOPE_KEY = "streamtrack.key_id"
KEY_HEADER = "x-streamtrack-key"
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/favicon.ico"})
ADMIN_PATHS = frozenset({"/metrics"})
PUBLIC_PREFIXES = ("/schema", "/dashboard")
INGEST_PATHS = frozenset({"/track", "/batch"})
INGEST_PREFIXES = ("/v1/",)
CORS_HEADERS = "Content-Type, Authorization, X-StreamTrack-Key, Content-Encoding"
BODY_KEY_PREFIXES = ("/v1/",)
"""Segment's API also takes the write key in the body (`writeKey`): checked by `authenticate_body_key`."""
GATE_SCOPE_KEY = "streamtrack.auth_gate"


class Access(enum.Enum):
    PUBLIC = "public"
    WRITE = "write"
    READ = "read"
    ADMIN = "admin"


def access_of(path: str) -> Access:
    if path in INGEST_PATHS or path.startswith(INGEST_PREFIXES):
        return Access.WRITE
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return Access.PUBLIC
    if path in ADMIN_PATHS:
        return Access.ADMIN
    return Access.READ


def project_of(request: Request[Any, Any, Any]) -> str:
    """The caller's project, as the gate resolved it from the key (or the default with auth off)."""
    project = request.scope.get(PROJECT_SCOPE_KEY)  # type: ignore[call-overload]
    if not isinstance(project, str) or not project:
        raise RuntimeError("the auth gate did not run for this request")  # a wiring bug, not the client's
    return project


def sees_the_instance(request: Request[Any, Any, Any]) -> bool:
    """True for an admin key, and with auth off (one open project): instance-wide figures are theirs only."""
    kind = request.scope.get(KIND_SCOPE_KEY)  # type: ignore[call-overload]
    return kind is None or kind is KeyKind.ADMIN


async def authenticate_body_key(request: Request[Any, Any, Any], key: object) -> None:
    """A request the gate let through without a header key: authenticate the key its body carries.

    Does nothing when the gate already knows the project (a header key, or auth off).
    """
    if isinstance(request.scope.get(PROJECT_SCOPE_KEY), str):  # type: ignore[call-overload]
        return
    gate = request.scope.get(GATE_SCOPE_KEY)  # type: ignore[call-overload]
    if not isinstance(gate, AuthGate):
        raise RuntimeError("the auth gate did not run for this request")
    principal = await asyncio.to_thread(gate.resolver.resolve, key) if isinstance(key, str) and key else None
    if principal is None:
        metrics.AUTH_FAILURES.labels("invalid_key").inc()
        raise Unauthorized("the write key is unknown or revoked", field="writeKey")
    if principal.kind is not KeyKind.WRITE:
        metrics.AUTH_FAILURES.labels("wrong_key_kind").inc()
        raise WrongKeyKind("this endpoint ingests events: use a write key (stw_...), not a read key", field="writeKey")
    request.scope[PROJECT_SCOPE_KEY] = principal.project_id  # type: ignore[literal-required]
    request.scope[KIND_SCOPE_KEY] = principal.kind  # type: ignore[literal-required]


def key_from_headers(headers: dict[str, str]) -> str | None:
    """The key in Authorization (Bearer, or Basic user name — password if the user is empty) or X-StreamTrack-Key."""
    authorization = headers.get("authorization", "").strip()
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or password or None
    return headers.get(KEY_HEADER, "").strip() or None


class AuthGate:
    def __init__(self, app: ASGIApp, settings: Settings, store: EventStore) -> None:
        self.app = app
        self.settings = settings
        self.resolver = KeyResolver(store, settings.key_cache_seconds)
        self.per_key = RateLimiter(settings.rate_limit_key_per_s, 2 * settings.rate_limit_key_per_s)
        self.per_address = RateLimiter(settings.rate_limit_address_per_s, 2 * settings.rate_limit_address_per_s)
        self.query_slots = QuerySlots(settings.query_concurrency_per_key)
        origins = [o.strip().rstrip("/") for o in settings.cors_origins.split(",") if o.strip()]
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = access_of(scope["path"])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if access is Access.WRITE:
            origin = headers.get("origin", "")
            if scope["method"] == "OPTIONS":
                await self._preflight(origin, send)
                return
            send = self._with_cors(origin, send)
        if access is Access.PUBLIC:
            await self.app(scope, receive, send)
            return
        if not self.settings.auth:
            scope[PROJECT_SCOPE_KEY] = self.settings.default_project  # type: ignore[literal-required]
        else:
            refusal = await self._authenticate(scope, headers, access)
            if refusal is not None:
                status, body, extra = refusal
                await _answer(send, status, body, extra)
                return
        if self.settings.anonymize_ip and scope.get("client"):
            # After the per-address limit; every handler (and so every event) sees only the truncated address.
            host, port = scope["client"]  # type: ignore[misc]
            scope["client"] = (anonymize_ip(host), port)
        key_id = scope.get(KEY_ID_SCOPE_KEY)
        if not isinstance(key_id, str) or not is_bounded_read(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self.query_slots.acquire(key_id):
            why = f"this key has {self.query_slots.limit} reads running already (STREAMTRACK_QUERY_CONCURRENCY_PER_KEY)"
            status, body, extra = _too_many("queries", 1.0, why)
            await _answer(send, status, body, extra)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.query_slots.release(key_id)

    async def _authenticate(
        self, scope: Scope, headers: dict[str, str], access: Access
    ) -> tuple[int, dict[str, object], dict[str, str]] | None:
        """None when the request may go on (its project set in the scope), else the refusal."""
        client = scope.get("client")
        address = client[0] if client else ""
        if wait := self.per_address.take(address):
            return _too_many("address", wait)
        secret = key_from_headers(headers)
        if secret is None and access is Access.WRITE:
            secret = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key") or [None])[0]
        if not secret and scope["path"].startswith(BODY_KEY_PREFIXES):
            scope[GATE_SCOPE_KEY] = self  # type: ignore[literal-required]  # the handler checks the body's writeKey
            return None
        if not secret:
            metrics.AUTH_FAILURES.labels("missing_key").inc()
            return _unauthorized(
                "missing_key",
                "no key: send it as 'Authorization: Bearer KEY', as the HTTP Basic user name, or as 'X-StreamTrack-Key'",
            )
        try:
            known, principal = self.resolver.cached(secret)
            if not known:  # a cache miss queries ClickHouse: off the event loop
                principal = await asyncio.to_thread(self.resolver.resolve, secret)
        except StoreUnavailable as exc:
            body: dict[str, object] = {"status": 503, "code": exc.code, "message": exc.message, "retry_after": 1}
            return 503, body, {"Retry-After": "1"}
        if principal is None:
            metrics.AUTH_FAILURES.labels("invalid_key").inc()
            return _unauthorized("invalid_key", "the key is unknown or revoked")
        wanted = {Access.WRITE: {KeyKind.WRITE}, Access.ADMIN: {KeyKind.ADMIN}}.get(access, READ_KINDS)
        if principal.kind not in wanted:
            metrics.AUTH_FAILURES.labels("wrong_key_kind").inc()
            message = {
                Access.WRITE: "this endpoint ingests events: use a write key (stw_...), not a read key",
                Access.ADMIN: "this endpoint shows every project's figures: use an admin key (sta_...)",
            }.get(access, "this endpoint reads data: use the project's secret read key (str_...); write keys only ingest")
            return 403, {"status": 403, "code": "wrong_key_kind", "message": message}, {}
        if wait := self.per_key.take(principal.prefix + principal.project_id):
            return _too_many("key", wait)
        scope[PROJECT_SCOPE_KEY] = principal.project_id  # type: ignore[literal-required]
        scope[KIND_SCOPE_KEY] = principal.kind  # type: ignore[literal-required]
        scope[KEY_ID_SCOPE_KEY] = principal.prefix + principal.project_id  # type: ignore[literal-required]
        return None

    def _origin_allowed(self, origin: str) -> bool:
        return bool(origin) and (self.any_origin or origin.rstrip("/") in self.origins)

    async def _preflight(self, origin: str, send: Send) -> None:
        if not self._origin_allowed(origin):
            body: dict[str, object] = {
                "status": 403, "code": "origin_not_allowed",
                "message": f"origin {origin or '(none)'} may not send events here (STREAMTRACK_CORS_ORIGINS)",
            }
            await _answer(send, 403, body, {})
            return
        await send({"type": "http.response.start", "status": 204, "headers": _encode({
            **self._cors_headers(origin), "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers": CORS_HEADERS, "access-control-max-age": "600",
        })})
        await send({"type": "http.response.body", "body": b""})

    def _cors_headers(self, origin: str) -> dict[str, str]:
        return {"access-control-allow-origin": "*" if self.any_origin else origin, "vary": "Origin"}

    def _with_cors(self, origin: str, send: Send) -> Send:
        if not self._origin_allowed(origin):
            return send

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in self._cors_headers(origin).items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}  # type: ignore[typeddict-item]
            await send(message)

        return send_with_cors


def _unauthorized(code: str, message: str) -> tuple[int, dict[str, object], dict[str, str]]:
    return 401, {"status": 401, "code": code, "message": message}, {"WWW-Authenticate": 'Bearer realm="streamtrack"'}


def _too_many(bucket: str, wait: float, why: str = "") -> tuple[int, dict[str, object], dict[str, str]]:
    metrics.RATE_LIMITED.labels(bucket).inc()
    seconds = retry_after_seconds(wait)
    body: dict[str, object] = {
        "status": 429, "code": "rate_limited", "retry_after": seconds,
        "message": f"{why or f'too many requests from this {bucket}'}; retry after {seconds} s",
    }
    return 429, body, {"Retry-After": str(seconds)}


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _answer(send: Send, status: int, body: dict[str, object], headers: dict[str, str]) -> None:
    """The API's one error shape (see streamtrack.api.errors), written before routing."""
    payload = msgspec.json.encode(body)
    await send({"type": "http.response.start", "status": status, "headers": _encode(
        {"content-type": "application/json", "content-length": str(len(payload)), **headers}
    )})
    await send({"type": "http.response.body", "body": payload})
