"""`streamtrack dev` serves the gRPC API beside HTTP, prints its address, and drains what it took.

The real command in a subprocess (its own Apache Kafka and data folder), as `make dev` runs it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import httpx

from streamtrack.api.grpc import SERVICE_NAME
from streamtrack.api.grpc.event_pb2 import Event, PublishEventRequest
from streamtrack.api.grpc.event_pb2_grpc import EventServiceStub
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
