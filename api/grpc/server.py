"""The gRPC server: EventService, server reflection and the standard health service.

Where it runs, and why:
- `streamtrack grpc` serves it alone: in Kubernetes it is its own Deployment and Service (the
  chart's `grpc:` values). gRPC clients keep one HTTP/2 connection and multiplex every call on
  it, so they are balanced per connection, not per request; a Deployment of its own can be
  scaled, probed (Kubernetes' native gRPC probes on the health service) and rolled out without
  touching the HTTP API, and a Service of its own lets clients balance across pods themselves
  (headless, `dns:///` with round_robin).
- `streamtrack dev` runs it beside HTTP on the same event loop (`serve_beside`): the embedded
  ClickHouse engine allows one process per data folder, and one producer serves both.
Health: "" is SERVING while the process runs (liveness); "streamtrack.v1.EventService" is
SERVING while Kafka and ClickHouse answer (readiness, checked every few seconds), and both turn
NOT_SERVING when the server drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading

import grpc
import structlog
import uvicorn
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from streamtrack.api.grpc import event_pb2, event_pb2_grpc
from streamtrack.api.grpc.service import EventService
from streamtrack.api.services import Services
from streamtrack.errors import ConfigError, RetryableError
from streamtrack.kafka import check_broker

log = structlog.get_logger(__name__)

SERVICE_NAME = event_pb2.DESCRIPTOR.services_by_name["EventService"].full_name
READINESS_EVERY_S = 5.0
DRAIN_SECONDS = 10.0


class GrpcServer:
    """One grpc.aio server on the running event loop; `start()` returns the bound port."""

    def __init__(self, services: Services, host: str, port: int) -> None:
        self.services = services
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = 0
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._readiness: asyncio.Task[None] | None = None

    async def start(self) -> int:
        settings = self.services.settings
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", settings.max_batch_bytes),
            ("grpc.so_reuseport", 0),  # gRPC's default would let a second server share the port silently
        ])
        event_pb2_grpc.add_EventServiceServicer_to_server(EventService(self.services), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
        )
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot listen for gRPC on {self.address} ({exc}); stop what uses it or set STREAMTRACK_GRPC_PORT"
            ) from None
        # Known and NOT_SERVING from the first call: a probe in the gap before the first readiness
        # check must be told "not yet", not NOT_FOUND.
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        self._server = server
        await self._check_ready()
        self._readiness = asyncio.create_task(self._watch_readiness(), name="grpc-readiness")
        return self.port

    async def _check_ready(self) -> None:
        try:
            await asyncio.to_thread(check_broker, self.services.settings)
            await asyncio.to_thread(self.services.store.ping)
            status = health_pb2.HealthCheckResponse.SERVING
        except RetryableError as exc:
            log.warning("gRPC not ready", reason=exc.message)
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set(SERVICE_NAME, status)

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(READINESS_EVERY_S)
            await self._check_ready()

    async def stop(self, grace: float = DRAIN_SECONDS) -> None:
        """NOT_SERVING first (probes take the pod out), then calls in flight get `grace` seconds."""
        if self._readiness is not None:
            self._readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)


async def serve_beside(http: uvicorn.Server, services: Services) -> None:
    """uvicorn, and the gRPC server on the same loop while it serves (STREAMTRACK_GRPC_PORT 0: none).

    When uvicorn starts to stop, the live feed is closed so open streams end at once (uvicorn
    would otherwise wait its graceful timeout for them, then cancel them).
    """
    settings = services.settings
    watcher = asyncio.create_task(_close_streams_on_exit(http, services))
    grpc_server = GrpcServer(services, settings.host, settings.grpc_port) if settings.grpc_port else None
    if grpc_server is not None:
        await grpc_server.start()
    try:
        await http.serve()
    finally:
        watcher.cancel()
        if grpc_server is not None:
            await grpc_server.stop(grace=2.0)


async def _close_streams_on_exit(http: uvicorn.Server, services: Services) -> None:
    while not http.should_exit:
        await asyncio.sleep(0.2)
    if "live" in services.__dict__:
        await asyncio.to_thread(services.live.close)


async def run_grpc(services: Services) -> None:
    """`streamtrack grpc`: serve until SIGTERM or SIGINT, then drain."""
    settings = services.settings
    server = GrpcServer(services, settings.host, settings.grpc_port)
    port = await server.start()
    log.info("gRPC listening", address=server.address, port=port, service=SERVICE_NAME)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("gRPC draining", seconds=DRAIN_SECONDS)
    await server.stop()


class BackgroundGrpc:
    """The gRPC server on its own thread and loop (tests, benches); `start()` returns once it listens."""

    def __init__(self, services: Services, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = GrpcServer(services, host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-server", daemon=True)

    @property
    def target(self) -> str:
        """host:port, as grpc.insecure_channel and grpcurl take it."""
        host = self.server.address.rpartition(":")[0]
        return f"{host}:{self.server.port}"

    def start(self, timeout: float = 10.0) -> BackgroundGrpc:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace=1.0), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        self._loop.close()
