"""Liveness and readiness, for Kubernetes probes and load balancers.

`/healthz` says only that the process serves HTTP (a restart would not help otherwise);
`/readyz` checks the broker and ClickHouse, so a replica that cannot do its job is taken
out of the Service instead of answering 503s.
"""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.di import NamedDependency

from streamtrack.api.services import Services
from streamtrack.errors import RetryableError
from streamtrack.kafka import check_broker


@get("/healthz", tags=["health"], summary="Process alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["health"], summary="Broker and ClickHouse reachable")
async def readyz(services: NamedDependency[Services]) -> Response[dict[str, object]]:
    async def check(name: str, probe) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        try:
            await asyncio.to_thread(probe)
            return name, "ok"
        except RetryableError as exc:
            return name, exc.message

    results = dict(
        await asyncio.gather(
            check("kafka", lambda: check_broker(services.settings)),
            check("clickhouse", services.store.ping),
        )
    )
    ready = all(value == "ok" for value in results.values())
    return Response(
        {"status": "ready" if ready else "not ready", "checks": results},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": "5"},
    )
