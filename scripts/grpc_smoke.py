"""Smoke test of a deployment's gRPC API: health, reflection, one PublishEvent, then the event over HTTP.

    python scripts/grpc_smoke.py --url API_URL [--target HOST:PORT] [--timeout 120]

Keys: STREAMTRACK_SMOKE_WRITE_KEY (sent in the call's metadata) and STREAMTRACK_SMOKE_READ_KEY (for
GET /activities), as `streamtrack smoke`. Without --target the Service <release>-grpc is reached
through `kubectl port-forward` (RELEASE, NAMESPACE as scripts/api-url.sh); a release without it
(grpc.enabled=false) has nothing to check and passes with a note. Jenkins' smoke stage runs it
(`make smoke-grpc`) after `make smoke`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from streamtrack.api.grpc import SERVICE_NAME
from streamtrack.api.grpc.event_pb2 import Event, PublishEventRequest
from streamtrack.api.grpc.event_pb2_grpc import EventServiceStub


class SmokeFailure(Exception):
    pass


@contextlib.contextmanager
def port_forward(release: str, namespace: str) -> Iterator[str | None]:
    """localhost:PORT forwarded to the release's gRPC Service, or None when it has none."""
    service = f"{release}-grpc" if "streamtrack" in release else f"{release}-streamtrack-grpc"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SmokeFailure("kubectl is needed to reach the gRPC Service (or pass --target)")
    found = subprocess.run([kubectl, "-n", namespace, "get", "service", service, "-o", "name"],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0:
        yield None
        return
    forward = subprocess.Popen([kubectl, "-n", namespace, "port-forward", f"service/{service}", ":50051"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if match is None:
            raise SmokeFailure(f"kubectl port-forward to {service} failed: {line.strip()}")
        yield f"127.0.0.1:{match.group(1)}"
    finally:
        forward.terminate()
        forward.wait(10)


def check(target: str, url: str, write_key: str | None, read_key: str | None, timeout_s: float) -> float:
    """Seconds until the published event was listed by /activities; raises SmokeFailure."""
    metadata = (("authorization", f"Bearer {write_key}"),) if write_key else ()
    user, event_id = f"grpc-smoke-{uuid.uuid4().hex[:8]}", f"grpc-smoke-{uuid.uuid4().hex}"
    with grpc.insecure_channel(target) as channel:
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
            if health.status != health_pb2.HealthCheckResponse.SERVING:
                raise SmokeFailure(f"{SERVICE_NAME} is not SERVING ({health.status}): Kafka or ClickHouse is down")
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
            (listing,) = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
            if SERVICE_NAME not in {s.name for s in listing.list_services_response.service}:
                raise SmokeFailure(f"reflection does not list {SERVICE_NAME}")
            reply = EventServiceStub(channel).PublishEvent(
                PublishEventRequest(event=Event(event_type="grpc_smoke_test", user_id=user, event_id=event_id)),
                metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            raise SmokeFailure(f"gRPC {exc.code().name}: {exc.details()}") from exc  # type: ignore[attr-defined]
    print(f"published {reply.event_id} over gRPC at {target}")
    published = time.monotonic()
    headers = {"Authorization": f"Bearer {read_key}"} if read_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        while time.monotonic() - published < timeout_s:
            response = client.get("/activities", params={"user_id": user})
            if response.status_code == 200 and any(row["event_id"] == event_id for row in response.json()["data"]):
                return time.monotonic() - published
            time.sleep(1)
    raise SmokeFailure(f"the event published over gRPC was not in /activities after {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the HTTP API's base URL, for GET /activities")
    parser.add_argument("--target", help="host:port of the gRPC API (default: kubectl port-forward to its Service)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    keys = os.environ.get("STREAMTRACK_SMOKE_WRITE_KEY"), os.environ.get("STREAMTRACK_SMOKE_READ_KEY")
    try:
        if args.target:
            seconds = check(args.target, args.url, *keys, args.timeout)
        else:
            release, namespace = os.environ.get("RELEASE", "streamtrack"), os.environ.get("NAMESPACE", "streamtrack")
            with port_forward(release, namespace) as target:
                if target is None:
                    print(f"no gRPC Service in release {release} (grpc.enabled=false): nothing to check")
                    return 0
                seconds = check(target, args.url, *keys, args.timeout)
    except SmokeFailure as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    print(f"gRPC smoke test passed: stored and listed after {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
