"""The live feed's delay and the gRPC API's throughput, on `streamtrack dev` (Apache Kafka, one process).

    .venv/bin/python bench/live.py [--events 300] [--seconds 5] [--concurrency 16]

Starts `streamtrack dev` (its own Kafka node and data folder, free ports), then:
1. delay: one stream open on GET /activities/stream; events sent one by one to POST /track,
   ~20 per second; for each, the time from its 202 to its arrival on the stream (negative: the
   stream had it before the client read its 202), and from sending it; beside it, the time
   until /activities lists an event (the worker's batch into ClickHouse, polled every 20 ms),
   which a feed tailing the store could not beat;
2. throughput over `--seconds` each, `--concurrency` clients on one connection each: gRPC
   PublishEvents (500 events a call) against HTTP POST /batch (the same 500 events), the
   ceiling of this server; and PublishEvent (one event a call) against POST /track.
Prints two tables; the machine's other load shows in the numbers (2 shared cores here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import grpc
import httpx
import msgspec

from streamtrack.api.grpc.event_pb2 import Event, PublishEventRequest, PublishEventsRequest
from streamtrack.api.grpc.event_pb2_grpc import EventServiceStub
from streamtrack.kafka.ports import free_port

BATCH = 500


def start_dev(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port, grpc_port, broker = free_port(), free_port(), free_port()
    env = {**os.environ, "STREAMTRACK_PORT": str(port), "STREAMTRACK_GRPC_PORT": str(grpc_port),
           "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker}", "STREAMTRACK_DATA_DIR": str(workdir / "data"),
           "STREAMTRACK_BOT_EVENTS_PER_SECOND": "0", "STREAMTRACK_LOG_LEVEL": "warning"}
    log = (workdir / "dev.log").open("wb")
    dev = subprocess.Popen([str(Path(sys.executable).parent / "streamtrack"), "dev"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return dev, base, f"127.0.0.1:{grpc_port}"
        except httpx.HTTPError:
            pass
        if dev.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"streamtrack dev did not start; see {workdir / 'dev.log'}")
        time.sleep(0.2)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"{statistics.median(ordered):7.1f} {pick(0.95):7.1f} {pick(0.99):7.1f} {ordered[-1]:7.1f}"


def measure_delay(base: str, count: int) -> list[str]:
    user = f"live-{uuid.uuid4().hex[:6]}"
    arrived: dict[str, float] = {}
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{base}/activities/stream", params={"user_id": user}, timeout=60) as response:
            ready.set()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrived[msgspec.json.decode(line[6:])["event_id"]] = time.perf_counter()
                    if len(arrived) == count:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(30)
    time.sleep(0.5)
    sent: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(count):
            event_id = f"{user}-{i}"
            started = time.perf_counter()
            assert client.post("/track", json={"event_type": "ping", "user_id": user, "event_id": event_id}).status_code == 202
            sent[event_id] = (started, time.perf_counter())
            time.sleep(0.05)
        listener.join(30)
        stored = []
        for i in range(20):  # the other way to feed a live view: wait for the worker to store it
            event_id = f"{user}-stored-{i}"
            client.post("/track", json={"event_type": "ping", "user_id": f"{user}-s", "event_id": event_id})
            accepted = time.perf_counter()
            while not any(row["event_id"] == event_id for row in
                          client.get("/activities", params={"user_id": f"{user}-s", "limit": 5}).json()["data"]):
                time.sleep(0.02)
            stored.append((time.perf_counter() - accepted) * 1000)
    missing = count - len(arrived)
    after_202 = [(arrived[e] - done) * 1000 for e, (_, done) in sent.items() if e in arrived]
    after_send = [(arrived[e] - start) * 1000 for e, (start, _) in sent.items() if e in arrived]
    answer = [(done - start) * 1000 for start, done in sent.values()]
    return [
        "| from → to (ms) | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|",
        f"| 202 → pushed on the stream ({len(after_202)} events, {missing} missing) | {' | '.join(percentiles(after_202).split())} |",
        f"| request sent → pushed | {' | '.join(percentiles(after_send).split())} |",
        f"| request sent → 202 | {' | '.join(percentiles(answer).split())} |",
        f"| 202 → listed by /activities (stored by the worker; 20 events) | {' | '.join(percentiles(stored).split())} |",
    ]


def events(n: int, tag: str) -> list[dict]:
    return [{"event_type": "bench", "user_id": f"{tag}-{i % 100}", "properties": {"i": i}} for i in range(n)]


async def http_rate(base: str, seconds: float, concurrency: int, batch: bool) -> float:
    body = msgspec.json.encode(events(BATCH, "h") if batch else events(1, "h")[0])
    path, per_call = ("/batch", BATCH) if batch else ("/track", 1)
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            while time.perf_counter() < deadline:
                async with session.post(f"{base}{path}", data=body, headers={"Content-Type": "application/json"}) as r:
                    if r.status == 202:
                        done += per_call
                    await r.read()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def grpc_rate(target: str, seconds: float, concurrency: int, batch: bool) -> float:
    messages = [Event(event_type="bench", user_id=f"g-{i % 100}") for i in range(BATCH)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        async with grpc.aio.insecure_channel(target) as channel:
            stub = EventServiceStub(channel)
            while time.perf_counter() < deadline:
                if batch:
                    reply = await stub.PublishEvents(PublishEventsRequest(events=messages), timeout=30)
                    done += reply.accepted
                else:
                    await stub.PublishEvent(PublishEventRequest(event=messages[0]), timeout=30)
                    done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300, help="events timed through the live feed")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="streamtrack-bench-live-") as tmp:
        dev, base, target = start_dev(Path(tmp))
        try:
            print("\n".join(measure_delay(base, args.events)), "\n", flush=True)
            rates = {}
            for name, run in (
                ("HTTP POST /batch (500 a call)", lambda: http_rate(base, args.seconds, args.concurrency, True)),
                ("gRPC PublishEvents (500 a call)", lambda: grpc_rate(target, args.seconds, args.concurrency, True)),
                ("HTTP POST /track (1 a call)", lambda: http_rate(base, args.seconds, args.concurrency, False)),
                ("gRPC PublishEvent (1 a call)", lambda: grpc_rate(target, args.seconds, args.concurrency, False)),
            ):
                rates[name] = asyncio.run(run())
            ceiling_batch, ceiling_one = rates["HTTP POST /batch (500 a call)"], rates["HTTP POST /track (1 a call)"]
            print(f"| ingest, {args.concurrency} clients, {args.seconds:.0f} s each | events/s | vs HTTP |")
            print("|---|---|---|")
            for name, rate in rates.items():
                ceiling = ceiling_batch if "500" in name else ceiling_one
                print(f"| {name} | {rate:,.0f} | {rate / ceiling:.2f} |")
        finally:
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(120)
            except subprocess.TimeoutExpired:
                dev.kill()
                dev.wait(10)


if __name__ == "__main__":
    main()
