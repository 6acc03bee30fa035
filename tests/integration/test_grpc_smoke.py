"""scripts/grpc_smoke.py (Jenkins' gRPC smoke step) against a running pipeline with keys on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.grpc import GrpcApi

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "grpc_smoke.py"


def smoke(api: GrpcApi, write: str, read: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMTRACK_SMOKE_WRITE_KEY": write, "STREAMTRACK_SMOKE_READ_KEY": read}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--url", api.pipeline.url, "--target", api.target, "--timeout", "60"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def test_passes_on_a_working_deployment(grpc_api: GrpcApi) -> None:
    done = smoke(grpc_api, grpc_api.write_key, grpc_api.read_key)
    assert done.returncode == 0, done.stderr
    assert "gRPC smoke test passed: stored and listed after" in done.stdout


def test_fails_with_the_reason_on_a_wrong_key(grpc_api: GrpcApi) -> None:
    done = smoke(grpc_api, grpc_api.read_key, grpc_api.read_key)
    assert done.returncode == 1
    assert "FAIL gRPC PERMISSION_DENIED: this service ingests events: use a write key" in done.stderr
