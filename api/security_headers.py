"""Headers every answer carries, whichever part of the API wrote it (gate, handlers, errors, static files).

- `X-Content-Type-Options: nosniff` on every response: a browser never reads JSON (or an error
  quoting a client's input) as HTML or script.
- A Content-Security-Policy on the Swagger page, which (`streamtrack.api.openapi`) loads only
  our own files, so scripts are `'self'` only; `frame-ancestors 'none'` there and on the
  dashboard (whose policy `streamtrack.api.dashboard` sets) so no other site can frame them.
A header a handler set already is left as it is.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from streamtrack.api.openapi import SWAGGER_PATH

SWAGGER_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Swagger UI styles elements inline (style attributes), hence style-src 'unsafe-inline'; no script is inline."""

_NOSNIFF = (b"x-content-type-options", b"nosniff")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [_NOSNIFF]
        if scope["path"] == SWAGGER_PATH:
            extra.append((b"content-security-policy", SWAGGER_CSP.encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in extra if header[0] not in present]
                message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            await send(message)

        await self.app(scope, receive, send_with_headers)
