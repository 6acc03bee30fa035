"""The Litestar application: routes, dependencies, error handling, docs — wired in one place."""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Litestar
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from streamtrack.api.activities import activities
from streamtrack.api.aliases import PathAliases
from streamtrack.api.analytics import ANALYTICS_HANDLERS
from streamtrack.api.auth import AuthGate
from streamtrack.api.dashboard import DASHBOARD_ROUTES
from streamtrack.api.dead_letters import DEAD_LETTER_HANDLERS
from streamtrack.api.errors import EXCEPTION_HANDLERS
from streamtrack.api.health import healthz, readyz
from streamtrack.api.http_guard import BodyGuard
from streamtrack.api.identities import IDENTITY_HANDLERS
from streamtrack.api.ingest import SERVICES_STATE_KEY, batch, track
from streamtrack.api.live import activities_stream
from streamtrack.api.openapi import docs_assets_router, openapi_config, swagger_init
from streamtrack.api.pipeline import pipeline_status
from streamtrack.api.privacy import erase_user_events
from streamtrack.api.security_headers import SecurityHeaders
from streamtrack.api.segment import SEGMENT_HANDLERS
from streamtrack.api.services import Services
from streamtrack.api.telemetry import RequestTelemetry, prometheus_metrics


def create_app(services: Services, extra_handlers: Sequence[ControllerRouterHandler] = ()) -> Litestar:
    """The app around already-opened services (the caller opens and closes them).

    `extra_handlers`: routes only some modes serve (`streamtrack dev` adds /dev/loadgen).
    """
    app = Litestar(
        route_handlers=[
            track, batch, activities, activities_stream, healthz, readyz, docs_assets_router(), swagger_init,
            prometheus_metrics,
            pipeline_status, *DASHBOARD_ROUTES,
            *ANALYTICS_HANDLERS,
            *SEGMENT_HANDLERS,
            *IDENTITY_HANDLERS,
            erase_user_events,
            *DEAD_LETTER_HANDLERS,
            *extra_handlers,
        ],
        dependencies={"services": Provide(lambda: services, use_cache=True, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi_config(),
        request_max_body_size=services.settings.max_batch_bytes,
        debug=False,
        logging_config=None,  # ours (streamtrack.telemetry.logs); Litestar's would replace the root handlers
    )
    settings = services.settings
    app.state["settings"] = settings  # for the server (api/server.py): its HTTP limits and trusted proxies
    app.state[SERVICES_STATE_KEY] = services  # for /track and /batch, which skip dependency injection
    app.asgi_handler = AuthGate(app.asgi_handler, settings, services.store)  # keys, limits, CORS
    app.asgi_handler = BodyGuard(app.asgi_handler, settings.http_body_timeout_seconds)  # slow or vanished bodies
    app.asgi_handler = RequestTelemetry(app.asgi_handler, settings.access_log)  # outside routing: sees 404s and 500s too
    app.asgi_handler = SecurityHeaders(app.asgi_handler)  # on every answer, refusals included
    app.asgi_handler = PathAliases(app.asgi_handler)  # /events, /events/bulk, /swagger: before anything looks at the path
    return app
