"""Segment-compatible ingestion next to the native API: events/s and latency of each path. Prints a table.

    .venv/bin/python bench/segment.py --duration 8

Same set-up as bench/ingest.py (whose helpers it uses): the API as its own process on the local
broker, loaded by wrk (1 thread, 32 connections). The Segment bodies are what
segment-analytics-python sends: a `context` with the library, `integrations`, ISO times,
`sentAt`, a write key in HTTP Basic; with and without gzip. Each run cycles through 20
pre-built bodies. The machine is shared and noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(
    str(ROOT)
)  # for bench.ingest; appended, so the repository's operator/ never shadows the stdlib

from bench.ingest import child, ensure_wrk, run_wrk  # noqa: E402
from streamtrack.kafka.apache import KafkaCluster  # noqa: E402
from streamtrack.kafka.ports import free_port  # noqa: E402
from streamtrack.telemetry.logs import configure_logging  # noqa: E402

BODIES = 20
AUTH = "Basic " + base64.b64encode(b"bench-write-key:").decode()

LUA = """
bodies = {}
for b = 1, %(count)d do
  local f = io.open(string.format("%(folder)s/%%d.body", b), "rb")
  bodies[b] = f:read("*all")
  f:close()
end
headers = {["Content-Type"] = "application/json", ["Authorization"] = "%(auth)s"%(gzip)s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "%(path)s", headers, bodies[counter %% %(count)d + 1])
end
"""


def _segment_message(i: int, now: str) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"u{i % 5000}",
        "anonymousId": f"a{i % 20000}",
        "messageId": uuid.uuid4().hex,
        "timestamp": now,
        "properties": {"plan": "pro", "sku": f"p{i % 50}"},
        "context": {
            "library": {"name": "analytics-python", "version": "2.4.0"},
            "page": {"url": f"https://shop.test/p/{i % 50}"},
        },
        "integrations": {},
    }


def _native_event(i: int, now: str) -> dict[str, object]:
    return {
        "event_type": "Product Viewed",
        "user_id": f"u{i % 5000}",
        "anonymous_id": f"a{i % 20000}",
        "event_id": uuid.uuid4().hex,
        "timestamp": now,
        "url": f"https://shop.test/p/{i % 50}",
        "properties": {"plan": "pro", "sku": f"p{i % 50}"},
    }


def _write_bodies(folder: Path, make: object, per_request: int) -> None:
    folder.mkdir(parents=True)
    now = datetime.now(UTC).isoformat()
    for b in range(1, BODIES + 1):
        items = [make(b * per_request + i, now) for i in range(per_request)]  # type: ignore[operator]
        folder.joinpath(f"{b}.body").write_bytes(json.dumps(items if per_request > 1 else items[0]).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per HTTP run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    configure_logging("warning", json=False)
    ensure_wrk()
    data = Path(tempfile.mkdtemp(prefix="streamtrack-bench-segment-"))
    size = args.batch_size

    runs: list[tuple[str, str, int, str]] = []  # name, path, events per request, folder
    for name, path, make, per_request, wrap, compress in (
        ("POST /track", "/track", _native_event, 1, None, False),
        ("POST /v1/track", "/v1/track", _segment_message, 1, None, False),
        (f"POST /batch ({size}/request)", "/batch", _native_event, size, None, False),
        (f"POST /v1/batch ({size}/request)", "/v1/batch", _segment_message, size, "batch", False),
        (f"POST /v1/batch ({size}/request, gzip)", "/v1/batch", _segment_message, size, "batch", True),
    ):
        folder = data / f"bodies-{len(runs)}"
        _write_bodies(folder, make, per_request)
        for body_file in folder.iterdir():
            body = body_file.read_bytes()
            if wrap:
                body = json.dumps({wrap: json.loads(body), "sentAt": datetime.now(UTC).isoformat()}).encode()
            body_file.write_bytes(gzip.compress(body) if compress else body)
        script = LUA % {
            "count": BODIES,
            "folder": folder,
            "auth": AUTH,
            "path": path,
            "gzip": ', ["Content-Encoding"] = "gzip"' if compress else "",
        }
        runs.append((name, script, per_request, str(folder)))

    rows: list[tuple[str, ...]] = []
    with KafkaCluster(data / "kafka") as broker:
        port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "STREAMTRACK_PORT": str(port),
            "STREAMTRACK_DATA_DIR": str(data / "api"),
            "STREAMTRACK_LOG_LEVEL": "warning",
            "STREAMTRACK_TOPIC_PARTITIONS": "6",
            "STREAMTRACK_AUTH": "off",  # the routes' own cost; keys add one cached lookup per request
        }
        api_command = [str(Path(sys.executable).parent / "streamtrack"), "api"]
        with child(api_command, env, data / "api.log", f"http://127.0.0.1:{port}", "/readyz"):
            for name, script, per_request, folder in runs:
                body_bytes = sum(p.stat().st_size for p in Path(folder).iterdir()) // BODIES
                result = run_wrk(f"http://127.0.0.1:{port}", script, args.duration, args.connections)
                ok = result["ok"]
                rows.append(
                    (
                        name,
                        f"{body_bytes:,}",
                        f"{ok * per_request:,}",
                        f"{ok * per_request / result['seconds']:,.0f}",
                        f"{result['p50']:.1f} / {result['p99']:.1f}",
                        f"{result['errors']}",
                    )
                )
    header = ("path", "body bytes", "events", "events/s", "latency p50 / p99 ms", "errors")
    widths = [max(len(r[i]) for r in (*rows, header)) for i in range(len(header))]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print(
        f"\nwrk: 1 thread, {args.connections} connections, {args.duration} s per run, {os.cpu_count()} cores; data in {data}"
    )


if __name__ == "__main__":
    main()
