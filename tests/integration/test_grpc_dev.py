"""The gRPC API's two ways to run: beside HTTP in `streamtrack dev` (which prints its address and
drains what it took), and alone as `streamtrack grpc` (the chart's Deployment). Real commands in
subprocesses, on Apache Kafka.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from streamtrack.api.grpc import SERVICE_NAME
from streamtrack.api.grpc.event_pb2 import Event, PublishEventRequest
from streamtrack.api.grpc.event_pb2_grpc import EventServiceStub
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.ports import free_port, port_open
from tests.integration.test_dev_mode import start_dev, wait_until


def test_dev_mode_serves_grpc_beside_http(tmp_path: Path) -> None:
    port, grpc_port, broker_port = free_port(), free_port(), free_port()
    env = {
        "STREAMTRACK_PORT": str(port), "STREAMTRACK_GRPC_PORT": str(grpc_port),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}", "STREAMTRACK_DATA_DIR": str(tmp_path / "data"),
    }
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dev.log"
    dev = start_dev(env, log)
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 90, "dev mode to be ready")
        assert f"gRPC           127.0.0.1:{grpc_port}  ({SERVICE_NAME}" in log.read_text()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = EventServiceStub(channel).PublishEvent(
                PublishEventRequest(event=Event(event_type="signup", user_id="dev-grpc", event_id="g-1")), timeout=30,
            )
        assert reply.event_id == "g-1"
        deadline = time.monotonic() + 30
        while not httpx.get(f"{base}/activities", params={"user_id": "dev-grpc"}).json()["data"]:
            assert time.monotonic() < deadline, "the gRPC event never reached /activities"
            time.sleep(0.1)
        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait(10)
    assert "stopped: 1 events stored" in log.read_text()
    assert not port_open("127.0.0.1", grpc_port), "the gRPC server outlived dev mode"


def test_streamtrack_grpc_serves_alone_and_drains_on_sigterm(broker: KafkaCluster, tmp_path: Path) -> None:
    """The chart's gRPC Deployment runs this command: it serves, reports health, and exits 0 on SIGTERM."""
    grpc_port = free_port()
    env = {
        **os.environ, "STREAMTRACK_GRPC_PORT": str(grpc_port), "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "STREAMTRACK_TOPIC": f"events-{uuid.uuid4().hex[:8]}", "STREAMTRACK_DATA_DIR": str(tmp_path / "data"),
        "STREAMTRACK_AUTH": "off",
    }
    log = tmp_path / "grpc.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(Path(sys.executable).parent / "streamtrack"), "grpc"], env=env, stdout=out, stderr=out)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            check = health_pb2_grpc.HealthStub(channel).Check
            request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
            first = check(request, timeout=10).status  # never NOT_FOUND, even before the first readiness check
            assert first in (health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING)
            wait_until(lambda: check(request, timeout=10).status == health_pb2.HealthCheckResponse.SERVING, 60, "SERVING")
            reply = EventServiceStub(channel).PublishEvent(
                PublishEventRequest(event=Event(event_type="signup", user_id="alone", event_id="a-1")), timeout=30,
            )
            assert reply.event_id == "a-1"
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert not port_open("127.0.0.1", grpc_port)
