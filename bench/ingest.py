"""Ingestion throughput: POST /track and POST /batch (each answered after the broker's
acknowledgement), one worker from the topic into ClickHouse, and the delay from a 202 until /activities
returns the event. Prints a table.

    make bench                      # or: .venv/bin/python bench/ingest.py --duration 10

The API runs as its own process (`streamtrack api`) and is loaded by wrk (Debian package,
installed here if missing) from another, so the load generator does not share the API's
interpreter. The worker is measured on a topic pre-filled with a known number of events.
The machine is shared and noisy: compare rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka import Producer

from streamtrack.api import Services, create_app
from streamtrack.api.server import BackgroundServer
from streamtrack.config import load_settings
from streamtrack.events import Event, encode_event
from streamtrack.kafka import client_config, ensure_topics
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.ports import free_port
from streamtrack.telemetry.logs import configure_logging
from streamtrack.store import open_store
from streamtrack.worker import Worker

ROOT = Path(__file__).resolve().parent.parent

TRACK_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"event_type":"page_view","user_id":"u%d","session_id":"s%d","url":"https://shop.test/p/%d","properties":{"plan":"pro","n":%d}}',
    counter % 5000, counter % 20000, counter % 50, counter)
  return wrk.format("POST", "/track", {["Content-Type"]="application/json"}, body)
end
"""

BATCH_LUA = """
bodies = {}
for b = 1, 20 do
  local events = {}
  for i = 1, %(size)d do
    events[i] = string.format(
      '{"event_type":"click","user_id":"u%%d","session_id":"s%%d","url":"https://shop.test/p/%%d","properties":{"plan":"pro"}}',
      (b * %(size)d + i) %% 5000, (b * %(size)d + i) %% 20000, i %% 50)
  end
  bodies[b] = "[" .. table.concat(events, ",") .. "]"
end
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/batch", {["Content-Type"]="application/json"}, bodies[counter %% 20 + 1])
end
"""


def ensure_wrk() -> str:
    if not shutil.which("wrk"):
        subprocess.run([str(ROOT / "scripts" / "apt-install"), "wrk"], check=True)
    return "wrk"


def run_wrk(url: str, script: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", handle.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(handle.name)

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    seconds = float(re.search(r"requests in ([\d.]+)s", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests, "seconds": seconds, "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0, "p50": ms("50"), "p99": ms("99"),
    }


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-P", "-m", "streamtrack.cli", "api"], env={**os.environ, **env},
                                   stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the API did not become ready; see {log}")


def bench_worker(env: dict[str, str], count: int) -> dict[str, float]:
    """Fill a fresh topic with `count` events, then time one worker storing them all."""
    suffix = uuid.uuid4().hex[:6]
    settings = load_settings(env={**env, "STREAMTRACK_TOPIC": f"bench-worker-{suffix}",
                                  "STREAMTRACK_CONSUMER_GROUP": f"bench-worker-{suffix}"})
    ensure_topics(settings)
    producer = Producer(client_config(settings, **{"linger.ms": 50, "compression.type": "lz4"}))
    last: dict[int, int] = {}

    def report(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    now = time.time_ns() // 1_000_000
    for i in range(count):
        event = Event(event_id=uuid.uuid4().hex, event_type="page_view", timestamp=now - i, received_at=now,
                      user_id=f"u{i % 5000}", session_id=f"s{i % 20000}", url=f"https://shop.test/p/{i % 50}",
                      properties={"plan": "pro", "n": i})
        while True:
            try:
                producer.produce(settings.topic, key=event.user_id.encode(), value=encode_event(event), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)

    store = open_store(settings)
    store.migrate()
    worker = Worker(settings, store)
    thread = threading.Thread(target=worker.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    first_batch = None
    while any(worker.stats.committed.get(p, 0) <= offset for p, offset in last.items()):
        if first_batch is None and worker.stats.batches:
            first_batch = (time.perf_counter(), worker.stats.inserted)
        time.sleep(0.01)
    finished = time.perf_counter()
    worker.stop()
    thread.join(30)
    stored = store.stats().distinct_events
    t0, done = first_batch or (started, 0)
    return {"events": stored, "seconds": finished - started, "steady": (count - done) / max(finished - t0, 1e-9)}


def bench_visibility(env: dict[str, str], samples: int) -> dict[str, float]:
    """Seconds from POST /track's 202 until GET /activities returns the event (API + worker in-process)."""
    suffix = uuid.uuid4().hex[:6]
    settings = load_settings(env={**env, "STREAMTRACK_TOPIC": f"bench-visible-{suffix}",
                                  "STREAMTRACK_CONSUMER_GROUP": f"bench-visible-{suffix}"})
    store = open_store(settings)
    services = Services.open(settings, store)
    worker = Worker(settings, store)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    worker.assigned.wait(30)
    server = BackgroundServer(create_app(services)).start()
    delays = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(samples):
                user = f"visible-{suffix}-{i}"
                assert client.post("/track", json={"event_type": "ping", "user_id": user}).status_code == 202
                acked = time.perf_counter()
                while not client.get("/activities", params={"user_id": user, "limit": 1}).json()["data"]:
                    time.sleep(0.005)
                delays.append(time.perf_counter() - acked)
                time.sleep(0.05)
    finally:
        server.stop()
        services.close()
        worker.stop()
        thread.join(30)
    delays.sort()
    return {"p50": delays[len(delays) // 2], "p95": delays[int(len(delays) * 0.95)], "max": delays[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per HTTP run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--worker-events", type=int, default=300_000)
    parser.add_argument("--visibility-samples", type=int, default=40)
    args = parser.parse_args()
    configure_logging("warning", json=False)
    ensure_wrk()
    cores = os.cpu_count()
    data = Path(tempfile.mkdtemp(prefix="streamtrack-bench-"))
    rows: list[tuple[str, str, str, str, str, str]] = []
    with KafkaCluster(data / "kafka") as broker:
        port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "STREAMTRACK_PORT": str(port),
            "STREAMTRACK_DATA_DIR": str(data / "api"), "STREAMTRACK_LOG_LEVEL": "warning",
            "STREAMTRACK_TOPIC_PARTITIONS": "6",
            "STREAMTRACK_AUTH": "off",  # the pipeline's own speed; keys add one cached lookup per request
        }
        api = start_api(env, port, data / "api.log")
        try:
            for name, script, per_request in (
                ("POST /track", TRACK_LUA, 1),
                (f"POST /batch ({args.batch_size}/request)", BATCH_LUA % {"size": args.batch_size}, args.batch_size),
            ):
                result = run_wrk(f"http://127.0.0.1:{port}", script, args.duration, args.connections)
                ok = result["requests"] - result["non2xx"]
                rows.append((
                    name, f"{ok * per_request:,}", f"{ok * per_request / result['seconds']:,.0f}",
                    f"{result['p50']:.1f} / {result['p99']:.1f}",
                    f"{result['non2xx'] + result['socket_errors']}", str(cores),
                ))
        finally:
            api.terminate()
            api.wait(30)
        worker_env = {**env, "STREAMTRACK_DATA_DIR": str(data / "worker")}
        result = bench_worker(worker_env, args.worker_events)
        rows.append((
            "topic -> ClickHouse (1 worker)", f"{result['events']:,}", f"{result['steady']:,.0f}",
            f"total {result['seconds']:.1f} s incl. group join", "0", str(cores),
        ))
        visible = bench_visibility(worker_env, args.visibility_samples)
        rows.append((
            f"202 -> visible in /activities ({args.visibility_samples} events)", "", "",
            f"{visible['p50'] * 1000:.0f} / {visible['p95'] * 1000:.0f} (p95), max {visible['max'] * 1000:.0f}",
            "0", str(cores),
        ))
    header = ("path", "events", "events/s", "latency p50 / p99 ms", "errors", "cores")
    widths = [max(len(r[i]) for r in (*rows, header)) for i in range(len(header))]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print(f"\nwrk: 1 thread, {args.connections} connections, {args.duration} s per run; data in {data}")


if __name__ == "__main__":
    main()
