"""Request telemetry for the API: a server span, a log line and metrics per request; `GET /metrics`.

`RequestTelemetry` wraps the whole ASGI app, outside Litestar's routing and error handling,
so it sees every request with its final status, unknown routes and 500s included. It
continues a caller's trace when the request carries a W3C `traceparent`. Routes are
labelled by their template (`/activities`, not the URL with its query), and unknown paths
as one value, so a scanner cannot blow up the metrics' label sets.
Request logs carry method, path, status and latency, never bodies or query strings (they
may hold personal data).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import structlog
from litestar import Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, StatusCode

from streamtrack.telemetry import metrics
from streamtrack.telemetry.tracing import tracer, tracing_enabled

log = structlog.get_logger("streamtrack.api.requests")

UNMATCHED_ROUTE = "(unmatched)"
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
"""Probes and scrapes, every few seconds: counted, logged only at debug level."""


_MAX_CACHED_SERIES = 10_000
"""Methods are the client's choice: past this many label sets, `labels()` is asked each time."""


class RequestTelemetry:
    """Metrics and a span for every request; a `request` log line too when `access_log` (STREAMTRACK_ACCESS_LOG)."""

    def __init__(self, app: ASGIApp, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = 500  # if the app fails before answering, uvicorn answers 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # Without a tracer provider there is no span to make: even a no-op one has a cost per request
        # (docs/benchmarks.md, "Measurements behind design choices").
        span = None
        if tracing_enabled():
            span = tracer().start_as_current_span(
                f"{method} {scope['path']}", context=extract(_headers(scope)), kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": scope["path"]},
            )
        with span if span is not None else contextlib.nullcontext() as current:
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                route = scope.get("path_template") or UNMATCHED_ROUTE
                seconds = time.perf_counter() - started
                if current is not None:
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", route)
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        current.set_status(StatusCode.ERROR)
                requests, latency = self._series(method, route, status)
                requests.inc()
                latency.observe(seconds)
                if self.access_log:
                    level = log.debug if scope["path"] in QUIET_PATHS else log.info
                    level("request", method=method, path=scope["path"], status=status, ms=round(seconds * 1000, 2))

    def _series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram of these labels, looked up once (`labels()` locks and hashes)."""
        key = (method, route, status)
        series = self._children.get(key)
        if series is None:
            series = (metrics.HTTP_REQUESTS.labels(method, route, str(status)), metrics.HTTP_LATENCY.labels(method, route))
            if len(self._children) < _MAX_CACHED_SERIES:
                self._children[key] = series
        return series


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}


@get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=True, sync_to_thread=False)
def prometheus_metrics() -> Response[Any]:
    """Every metric of this process (API, and the worker too in `streamtrack dev`) in Prometheus' text format."""
    body, content_type = metrics.metrics_text()
    return Response(body, media_type=content_type)
