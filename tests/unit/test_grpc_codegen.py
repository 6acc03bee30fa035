"""The committed gRPC modules are what proto/event.proto generates (scripts/grpc_codegen.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_modules_match_the_contract() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "grpc_codegen.py"), "--check"], capture_output=True, text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_the_generated_stub_imports_its_messages_from_the_package() -> None:
    stub = (ROOT / "api" / "grpc" / "event_pb2_grpc.py").read_text()
    assert "from streamtrack.api.grpc import event_pb2 as event__pb2" in stub
    assert "\nimport event_pb2" not in stub
