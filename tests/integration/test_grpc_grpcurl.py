"""The gRPC API as an operator calls it: grpcurl (built from the Go module proxy, `make go-tools`).

grpcurl finds the service through server reflection (and, separately, from proto/event.proto, the
contract in the repository), publishes events as JSON, sees bad input and auth refused with the
status and message a person can act on, and checks health as Kubernetes' probes do.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from streamtrack.api.grpc import SERVICE_NAME
from tests.fixtures.gotools import binary
from tests.fixtures.grpc import GrpcApi

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


GRPCURL = binary("grpcurl")


def grpcurl(api: GrpcApi, *args: str, data: object = None, key: str | None = None,
            proto: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(GRPCURL), "-plaintext", "-max-time", "20"]
    if key is not None:
        command += ["-H", f"authorization: Bearer {key}"]
    if proto:
        command += ["-import-path", str(ROOT / "proto"), "-proto", "event.proto"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run([*command, api.target, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_reflection_lists_and_describes_the_service(grpc_api: GrpcApi) -> None:
    listed = grpcurl(grpc_api, "list")
    assert listed.returncode == 0, listed.stderr
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= set(listed.stdout.split())
    methods = grpcurl(grpc_api, "list", SERVICE_NAME)
    assert methods.stdout.split() == [f"{SERVICE_NAME}.PublishEvent", f"{SERVICE_NAME}.PublishEvents"]
    described = grpcurl(grpc_api, "describe", "streamtrack.v1.Event")
    assert described.returncode == 0 and "string event_type = 1;" in described.stdout
    assert ".google.protobuf.Struct properties = 12;" in described.stdout


@pytest.mark.parametrize("proto", [False, True], ids=["reflection", "proto-file"])
def test_publish_event_and_read_it_back(grpc_api: GrpcApi, proto: bool) -> None:
    user = f"curl-{uuid.uuid4().hex[:6]}"
    event = {"event_type": "page_view", "user_id": user, "url": "https://shop.test/", "timestamp": "2026-01-31T12:00:00Z",
             "tags": ["cli"], "properties": {"plan": "pro", "seats": 3}}
    done = grpcurl(grpc_api, f"{SERVICE_NAME}/PublishEvent", data={"event": event}, key=grpc_api.write_key, proto=proto)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    # JSON names: camelCase from the .proto file; the proto's own names from reflection's descriptors.
    event_id = reply["eventId"] if proto else reply["event_id"]
    deadline = time.monotonic() + TIMEOUT
    while not (rows := grpc_api.read(user_id=user)):
        assert time.monotonic() < deadline, "the event grpcurl published was not stored"
        time.sleep(0.1)
    (row,) = rows
    assert (row["event_id"], row["timestamp"], row["tags"], row["properties"]) == (
        event_id, "2026-01-31T12:00:00.000Z", ["cli"], {"plan": "pro", "seats": 3})


def test_publish_events_gives_a_result_per_event(grpc_api: GrpcApi) -> None:
    events = [{"event_type": "a", "user_id": "curl-batch"}, {"user_id": "curl-batch"}, {"event_type": "b", "anonymous_id": "x"}]
    done = grpcurl(grpc_api, f"{SERVICE_NAME}/PublishEvents", data={"events": events}, key=grpc_api.write_key)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert (reply["accepted"], reply["rejected"]) == (2, 1)
    assert [r["status"] for r in reply["results"]] == ["ACCEPTED", "REJECTED", "ACCEPTED"]
    assert reply["results"][1]["field"] == "event_type" and reply["results"][1]["code"] == "invalid_event"


@pytest.mark.parametrize(
    ("data", "key", "code", "message"),
    [
        ({"event": {"user_id": "u"}}, "write", "InvalidArgument", "event_type: missing: give the event's name"),
        ({"event": {"event_type": "x", "user_id": "u", "timestamp": "1999-12-31T23:59:59Z"}}, "write", "InvalidArgument",
         "timestamp: 1999-12-31T23:59:59.000Z is before 2000-01-01"),
        ({"event": {"event_type": "x", "user_id": "u", "tags": [""] * 51}}, "write", "InvalidArgument",
         "tags: has 51 tags; at most 50 are accepted"),
        ({"event": {"event_type": "x", "user_id": "u"}}, None, "Unauthenticated", "no key: send the write key"),
        ({"event": {"event_type": "x", "user_id": "u"}}, "stw_forged", "Unauthenticated", "the key is unknown or revoked"),
        ({"event": {"event_type": "x", "user_id": "u"}}, "read", "PermissionDenied",
         "this service ingests events: use a write key (stw_...), not a read key"),
    ],
)
def test_bad_input_and_auth_failures(grpc_api: GrpcApi, data: dict, key: str | None, code: str, message: str) -> None:
    sent = {"write": grpc_api.write_key, "read": grpc_api.read_key}.get(key or "", key)
    done = grpcurl(grpc_api, f"{SERVICE_NAME}/PublishEvent", data=data, key=sent)
    assert done.returncode != 0
    assert f"Code: {code}" in done.stderr and f"Message: {message}" in done.stderr, done.stderr


def test_a_field_the_contract_does_not_have_is_refused_by_grpcurl(grpc_api: GrpcApi) -> None:
    done = grpcurl(grpc_api, f"{SERVICE_NAME}/PublishEvent", data={"event": {"event_name": "x"}}, key=grpc_api.write_key)
    assert done.returncode != 0 and 'has no known field named event_name' in done.stderr, done.stderr


@pytest.mark.parametrize("service", ["", SERVICE_NAME])
def test_health_as_the_probes_ask(grpc_api: GrpcApi, service: str) -> None:
    done = grpcurl(grpc_api, "grpc.health.v1.Health/Check", data={"service": service})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "SERVING"}
