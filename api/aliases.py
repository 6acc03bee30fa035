"""Other trackers' paths for our endpoints: seed 003's `POST /events` and `POST /events/bulk`, and `/swagger`.

An alias is rewritten to its endpoint before anything else sees the request, so it is that
endpoint in every respect: the same key check and CORS (the gate classes paths), limits,
answers, metrics and logs (labelled with the endpoint's route). Aliases are not repeated in
the OpenAPI document; docs/api/ingestion.md lists them.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send

ALIASES = {
    "/events": "/track",
    "/events/bulk": "/batch",
    "/swagger": "/schema/swagger",
}


class PathAliases:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = ALIASES.get(scope["path"]) if scope["type"] == "http" else None
        if target is not None:
            scope = {**scope, "path": target, "raw_path": target.encode()}  # type: ignore[typeddict-item]
        await self.app(scope, receive, send)
