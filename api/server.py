"""Serving the app with uvicorn, in the foreground (CLI) or a background thread (dev, tests).

uvicorn rather than a multi-process server: one process per pod is the Kubernetes way to
scale, and the embedded ClickHouse engine can only live in one process. Its event loop is
uvloop's (`Server.run()` sets it up; a bare `asyncio.run(server.serve())` would not): measured
with bench/ingest.py, interleaved in one run, it serves /track and /batch faster than asyncio's
(see docs/benchmarks.md, "Ingest").
"""

from __future__ import annotations

import threading
import time

import uvicorn
from litestar import Litestar

from streamtrack.api.http_guard import HttpLimits, guarded_protocol
from streamtrack.config import Settings

KEEPALIVE_SECONDS = 75
"""uvicorn's own default (5 s) loses a race: a client that reuses a connection just as the
server's idle timer fires gets it closed under its request (a read error, no response). A
stalled process (GIL, GC, a loaded machine) makes that likely; so do load balancers that
keep connections longer than 5 s. Deployments set STREAMTRACK_HTTP_KEEPALIVE_SECONDS."""


def make_server(app: Litestar, host: str, port: int, keepalive_s: int = KEEPALIVE_SECONDS) -> uvicorn.Server:
    """uvicorn serving `app` with the HTTP limits and trusted proxies of the settings `create_app` kept.

    Forwarded headers are believed only from STREAMTRACK_FORWARDED_ALLOW_IPS (uvicorn's own
    default trusts 127.0.0.1, so without a proxy any local client, or one behind a local
    tunnel, would choose the address the rate limiter and the events see).
    """
    settings: Settings | None = app.state.get("settings")
    limits = HttpLimits.of(settings) if settings is not None else HttpLimits()
    trusted = settings.forwarded_allow_ips if settings is not None else ""
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", log_level="warning", access_log=False, lifespan="off",
        timeout_graceful_shutdown=10, timeout_keep_alive=keepalive_s,
        http=guarded_protocol(limits), proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None,
        server_header=False,
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """uvicorn on its own thread; `start()` returns once it accepts connections."""

    def __init__(self, app: Litestar, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(app, host, port)
        self._thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
