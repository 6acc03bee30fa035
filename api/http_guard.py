"""Slow and oversized clients: bounds on how long and how much a request may take to arrive.

uvicorn bounds neither the time a request's headers take nor their size (httptools buffers a
header until it ends), so a client dripping bytes, or sending megabytes of headers, holds a
connection and memory for as long as it likes. Two guards, each where it can see what it bounds:

- `guarded_protocol`: uvicorn's httptools protocol with a deadline for the request line and
  headers (from the request's first byte; a connection that sends nothing is closed after the
  keep-alive timeout, which uvicorn only arms after a first response), and limits on their total
  size and number. A refusal is answered in the API's error shape (408 or 431) and the
  connection closed: what follows on it cannot be trusted to start a request. Counted in
  `streamtrack_http_refused_total{reason}`; the app never sees these requests.
- `BodyGuard` (ASGI): the body must arrive within a deadline of its headers (408, and the
  connection closed), and a client that disconnects before its body is whole is answered 499
  (nginx's "client closed request") instead of Litestar's 500: nobody is there to read it, and
  it is not the server's failure, so it does not count among the 5xx.
"""

from __future__ import annotations

import asyncio
import dataclasses
from asyncio import TimerHandle
from typing import Any

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from streamtrack.config import Settings
from streamtrack.errors import ClientError
from streamtrack.telemetry import metrics


class RequestTimeout(ClientError):
    status = 408
    code = "request_timeout"


class ClientClosedRequest(ClientError):
    """The client went away mid-body; the answer goes nowhere, it exists for the metrics and logs."""

    status = 499
    code = "client_closed_request"


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        return cls(
            header_timeout_s=settings.http_header_timeout_seconds,
            body_timeout_s=settings.http_body_timeout_seconds,
            max_header_bytes=settings.http_max_header_bytes,
            max_headers=settings.http_max_headers,
        )


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _refusal(status: int, code: str, message: str) -> bytes:
    body = msgspec.json.encode({"status": status, "code": code, "message": message})
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _HeadersRefused(Exception):
    """Raised in a parser callback to stop parsing; `send_400_response` then answers it."""


def guarded_protocol(limits: HttpLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol bounded by `limits` (pass as `uvicorn.Config(http=...)`)."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _too_large = f"the request line and headers are over {limits.max_header_bytes} bytes"

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer: TimerHandle | None = None
            self._header_bytes = 0  # bytes read while headers arrive
            self._header_size = 0  # request line and headers parsed so far
            self._in_headers = False
            self._in_body = False
            self._refused: tuple[int, str, str] | None = None
            # Idle until a first byte, as between keep-alive requests (uvicorn arms this only after a response).
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

        def data_received(self, data: bytes) -> None:
            if not self._in_body:
                self._header_bytes += len(data)
            super().data_received(data)
            if self._in_headers and self._refused is None and self._header_bytes > limits.max_header_bytes:
                self._refuse(431, "headers_too_large", self._too_large)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers = True
            self._header_size = 0
            self._header_timer = self.loop.call_later(limits.header_timeout_s, self._headers_too_slow)

        def on_url(self, url: bytes) -> None:
            self._header_size += len(url)
            self._check_size()
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if len(self.headers) >= limits.max_headers:
                self._refused = (431, "too_many_headers", f"the request has more than {limits.max_headers} headers")
                raise _HeadersRefused
            self._header_size += len(name) + len(value) + 4  # ": " and CRLF
            self._check_size()
            super().on_header(name, value)

        def _check_size(self) -> None:
            """Headers that arrived whole in one read (data_received sees those still arriving)."""
            if self._header_size > limits.max_header_bytes:
                self._refused = (431, "headers_too_large", self._too_large)
                raise _HeadersRefused

        def on_headers_complete(self) -> None:
            self._end_of_headers()
            self._in_body = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body = False
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._end_of_headers()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            if self._refused is None:
                super().send_400_response(msg)
                return
            status, reason, message = self._refused
            self._refused = None
            self._refuse(status, reason, message)

        def _end_of_headers(self) -> None:
            self._in_headers = False
            self._header_bytes = 0
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self._in_headers:
                self._refuse(408, "header_timeout", f"the request's headers did not arrive within {limits.header_timeout_s:g} s")

        def _refuse(self, status: int, reason: str, message: str) -> None:
            self._end_of_headers()
            metrics.HTTP_REFUSED.labels(reason).inc()
            if not self.transport.is_closing():
                code = "request_timeout" if status == 408 else "headers_too_large"
                self.transport.write(_refusal(status, code, message))
                self.transport.close()

    return GuardedHttpToolsProtocol


class BodyGuard:
    """The body's deadline, and a client gone mid-body answered 499 rather than 500 (ASGI)."""

    def __init__(self, app: ASGIApp, body_timeout_s: float) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        whole = False
        timed_out = False

        async def guarded_receive() -> Message:
            nonlocal whole, timed_out
            if whole:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):  # a timer, not wait_for's task per receive
                    message: Any = await receive()
            except TimeoutError:
                timed_out = True
                raise RequestTimeout(f"the request body did not arrive within {self.body_timeout_s:g} s") from None
            if message["type"] == "http.disconnect":
                raise ClientClosedRequest("the client closed the connection before its request body was whole")
            whole = not message.get("more_body", False)
            return message  # type: ignore[no-any-return]

        async def closing_send(message: Message) -> None:
            if timed_out and message["type"] == "http.response.start":
                # The rest of the body may still be coming: the connection cannot carry another request.
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}  # type: ignore[typeddict-item]
            await send(message)

        await self.app(scope, guarded_receive, closing_send)
