"""The OpenAPI document and its interactive UI, served without any CDN.

The ingestion handlers read raw bodies (see `ingest`), so their request bodies are
described here by hand: the canonical names, the accepted aliases, and examples that
work as printed. Swagger UI's assets come from the `swagger-ui-bundle` package, so the
docs work in clusters with no internet.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from litestar import Request, Response, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIMediaType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.static_files import create_static_files_router

import streamtrack

ASSETS_PATH = "/schema/assets"
SWAGGER_PATH = "/schema/swagger"
SWAGGER_INIT_PATH = "/schema/swagger-init.js"

_S, _N, _O, _A = OpenAPIType.STRING, OpenAPIType.NUMBER, OpenAPIType.OBJECT, OpenAPIType.ARRAY

EVENT_SCHEMA = Schema(
    type=_O,
    required=["event_type"],
    description=(
        "One event. Also accepted: `event_name`/`event`/`action` for event_type, `userId`/`distinct_id` for "
        "user_id, `anonymousId`, `sessionId`, `page_url`/`pageUrl` for url, `metadata` for properties, "
        "`message_id`/`messageId`/`insert_id` for event_id. Unknown top-level fields are kept in properties. "
        "user_id or anonymous_id is required."
    ),
    properties={
        "event_type": Schema(type=_S, max_length=200, description="What happened, e.g. page_view."),
        "user_id": Schema(type=[_S, OpenAPIType.INTEGER], description="Who did it (or give anonymous_id)."),
        "anonymous_id": Schema(type=_S, max_length=200),
        "session_id": Schema(type=_S, max_length=200),
        "event_id": Schema(
            type=_S, max_length=200,
            description="Your id for the event; retries with the same id are stored once. Generated if absent.",
        ),
        "timestamp": Schema(
            type=[_S, _N], description="RFC 3339 text or epoch seconds/milliseconds; default: time of receipt."
        ),
        "url": Schema(type=_S, max_length=8192),
        "referrer": Schema(type=_S, max_length=8192),
        "channel": Schema(type=_S, max_length=200),
        "campaign_id": Schema(type=_S, max_length=200),
        "tags": Schema(type=_A, items=Schema(type=_S), max_items=50),
        "properties": Schema(type=_O, description="Free-form data: at most 8 levels deep and 1,000 keys/items."),
    },
)

TRACK_EXAMPLE = {
    "event_type": "page_view",
    "user_id": "u-42",
    "session_id": "s-1",
    "url": "https://shop.example/pricing",
    "properties": {"plan": "pro"},
}


def _json_body(schema: Schema, example: object, description: str) -> RequestBody:
    content = OpenAPIMediaType(schema=schema, examples={"example": Example(value=example)})
    return RequestBody(
        required=True, description=description, content={"application/json": content, "text/plain": content}
    )


@dataclass
class TrackOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(EVENT_SCHEMA, TRACK_EXAMPLE, "One event (at most 64 KiB by default).")


@dataclass
class BatchOperation(Operation):
    def __post_init__(self) -> None:
        batch = Schema(
            one_of=[
                Schema(type=_A, items=EVENT_SCHEMA, max_items=2500),
                Schema(type=_O, required=["events"], properties={"events": Schema(type=_A, items=EVENT_SCHEMA)}),
            ]
        )
        example = {"events": [TRACK_EXAMPLE, {**TRACK_EXAMPLE, "event_type": "click", "properties": {"id": "buy"}}]}
        self.request_body = _json_body(batch, example, "A JSON array of events, or {\"events\": [...]}.")


class SwaggerPage(SwaggerRenderPlugin):
    """Swagger UI with no inline script (Litestar's page inlines the whole document in one), so the
    page's Content-Security-Policy can allow scripts from 'self' only (`security_headers`)."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        return (
            f"<!DOCTYPE html><html><head><title>{title}</title>{self.favicon}<meta charset='utf-8'/>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<link href='{self.css_url}' rel='stylesheet'><script src='{self.js_url}'></script>"
            f"<script src='{self.standalone_preset_js_url}'></script><script src='{SWAGGER_INIT_PATH}'></script>"
            "</head><body><div id='swagger-container'></div></body></html>"
        ).encode()


# The Swagger UI of swagger-ui-bundle (3.x) predates OpenAPI 3.1 and refuses Litestar's 3.1 document
# ("does not specify a valid version field"); labelled 3.0 it draws it, a type list shown as written.
SWAGGER_INIT = """window.addEventListener("load", async () => {
  const spec = await (await fetch("/schema/openapi.json")).json();
  spec.openapi = "3.0.3";
  window.ui = SwaggerUIBundle({
    spec,
    dom_id: "#swagger-container",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  });
});
"""


@get(SWAGGER_INIT_PATH, include_in_schema=False, sync_to_thread=False)
def swagger_init() -> Response[str]:
    """What Litestar's Swagger page runs inline, as a file of our own."""
    return Response(SWAGGER_INIT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def openapi_config() -> OpenAPIConfig:
    assets = ASSETS_PATH
    return OpenAPIConfig(
        title="StreamTrack",
        version=streamtrack.__version__,
        description="Self-hosted event tracking: ingest over HTTP, buffered in Kafka, queried from ClickHouse.",
        path="/schema",
        render_plugins=[
            SwaggerPage(
                path="/swagger",
                js_url=f"{assets}/swagger-ui-bundle.js",
                css_url=f"{assets}/swagger-ui.css",
                standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
            )
        ],
        # docs/operations/security.md: write keys for ingestion, read keys for everything else (Swagger's Authorize button).
        components=Components(security_schemes={
            "bearer": SecurityScheme(type="http", scheme="bearer", description="A project key: `Authorization: Bearer stw_…|str_…`."),
            "header": SecurityScheme(type="apiKey", name="X-StreamTrack-Key", security_scheme_in="header",
                                     description="A project key in its own header."),
            "basic": SecurityScheme(type="http", scheme="basic", description="The key as the user name (Segment's SDKs)."),
        }),
        security=[{"bearer": []}, {"header": []}, {"basic": []}],
    )


def docs_assets_router():  # type: ignore[no-untyped-def]
    return create_static_files_router(
        path=ASSETS_PATH, directories=[Path(swagger_ui_bundle.swagger_ui_path)], include_in_schema=False
    )



