"""The live dashboard: one HTML page, its CSS and JavaScript, and a vendored chart library.

Everything ships inside the package (`dashboard_assets/`), nothing comes from a CDN: clusters
are often offline. The page is plain ES modules with no build step; it polls the JSON API
(`/analytics/*` incl. retention and sessions, `/dead-letters`, `/pipeline/status`), follows the
live feed pushed by `/activities/stream` (live.js; `/activities` is polled only while the stream
is down) and draws with Chart.js (vendored from npm with its licence, see `dashboard_assets/vendor/`).

The load-generator buttons only make sense in `streamtrack dev`, which registers
`/dev/loadgen`; the page is told whether that route exists, so it never probes a 404.
"""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, Request, Response, get
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

ASSETS_DIR = Path(__file__).parent / "dashboard_assets"
ASSETS_PATH = "/dashboard/assets"
LOADGEN_PATH = "/dev/loadgen"
# Only our own files: a stray inline script or a remote asset is refused (and shows in the console);
# and no other site may frame the page (clickjacking the load generator's buttons, say).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _page(loadgen: bool) -> str:
    html = (ASSETS_DIR / "index.html").read_text(encoding="utf-8")
    return html.replace('data-loadgen="false"', f'data-loadgen="{str(loadgen).lower()}"', 1)


@get("/dashboard", include_in_schema=False)
async def dashboard(request: Request) -> Response[str]:
    loadgen = any(route.path == LOADGEN_PATH for route in request.app.routes)
    return Response(
        _page(loadgen), media_type=MediaType.HTML,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/dashboard")


def dashboard_assets_router():  # type: ignore[no-untyped-def]
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR], include_in_schema=False)


DASHBOARD_ROUTES = [dashboard, root, dashboard_assets_router()]
