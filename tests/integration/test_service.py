"""Health, readiness, the OpenAPI document and its offline UI, and a broker that is gone."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from streamtrack.api import Services, create_app
from streamtrack.api.server import BackgroundServer
from streamtrack.kafka import EventProducer
from streamtrack.kafka.ports import free_port
from streamtrack.normalize import Limits
from tests.fixtures.pipeline import Pipeline


def test_health_and_readiness(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"kafka": "ok", "clickhouse": "ok"}}


def test_openapi_document_and_ui_work_offline(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        spec = client.get("/schema/openapi.json").json()
        assert {"/track", "/batch", "/activities", "/healthz", "/readyz"} <= set(spec["paths"])
        track = spec["paths"]["/track"]["post"]
        assert "event_type" in track["requestBody"]["content"]["application/json"]["schema"]["properties"]
        page = client.get("/schema/swagger").text
        assert "/schema/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
        asset = client.get("/schema/assets/swagger-ui-bundle.js")
        assert asset.status_code == 200 and len(asset.content) > 100_000


def test_unreachable_broker_gives_503_with_retry_after(pipeline: Pipeline) -> None:
    """No broker at all: /track answers 503 + Retry-After within the produce timeout, /readyz says why."""
    settings = pipeline.settings.replace(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", produce_timeout_ms=1000
    )
    services = Services(settings, EventProducer(settings), pipeline.store, Limits())
    server = BackgroundServer(create_app(services)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            response = client.post("/track", json={"event_type": "x", "user_id": "u"})
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["code"] == "broker_unavailable"
            batch = client.post("/batch", json=[{"event_type": "x", "user_id": "u"}, {"bad": 1}])
            assert batch.status_code == 503 and "Retry-After" in batch.headers
            assert [r["status"] for r in batch.json()["results"]] == ["failed", "rejected"]
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["clickhouse"] == "ok"
            assert ready.json()["checks"]["kafka"] != "ok"
    finally:
        server.stop()
        services.producer.close(timeout=1)


def test_idle_keepalive_connection_outlives_uvicorns_five_seconds(pipeline: Pipeline) -> None:
    """A connection idle for 6 s is still open (uvicorn's default closed it after 5 s, and a client
    reusing it at that moment got a read error instead of an answer: seen in CI under load)."""
    address = urlsplit(pipeline.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(6)
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "the server closed the idle connection"
