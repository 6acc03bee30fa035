"""How fast one worker stores events, against the ceiling measured in the same run. Prints a table.

    .venv/bin/python bench/worker.py [--events 300000] [--batch 10000]

Rows, all on the same events (a user's events, server-made ids, as `/batch` produces them):
- ceiling: a plain `EventStore.insert` of the decoded batches into the events table;
- the same insert into the events table without its projections (the write amplification is
  the ratio of the two: what the projections cost every insert);
- `Sink.write` of the same batches: the worker's write path without Kafka (dedup, erasures);
- `streamtrack worker` as its own process, from a pre-filled topic on Apache Kafka (single
  node, started here) into its own embedded ClickHouse: the whole worker, with its peak RSS.
The machine is shared and noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import structlog
from confluent_kafka import Producer

from streamtrack.config import load_settings
from streamtrack.events import Event, decode_event, encode_event
from streamtrack.kafka import client_config, committed_offsets, ensure_topics
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore, open_store
from streamtrack.store.schema import EVENTS_TABLE, events_table_statement
from streamtrack.worker import tune_gc
from streamtrack.worker.sink import Sink

ROOT = Path(__file__).resolve().parent.parent


def make_events(count: int) -> list[bytes]:
    now = time.time_ns() // 1_000_000
    return [
        encode_event(Event(
            event_id=uuid.uuid4().hex, event_type="page_view", timestamp=now - i, received_at=now - i,
            user_id=f"u{i % 5000}", session_id=f"s{i % 20000}", url=f"https://shop.test/p/{i % 50}",
            properties={"plan": "pro", "n": i}, generated_id=True,
        ))
        for i in range(count)
    ]


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def in_process(records: list[bytes], batch: int, data: Path) -> dict[str, float]:
    """Seconds of each in-process row over the same decoded batches."""
    batches = [[decode_event(r) for r in records[i:i + batch]] for i in range(0, len(records), batch)]
    settings = load_settings(env={}, data_dir=str(data), clickhouse_database="ceiling")
    seconds = {}
    with open_store(settings) as store:
        store.migrate()
        bare = EventStore(store.backend, "bare")
        bare.migrate()
        store.backend.command(f"DROP TABLE `bare`.`{EVENTS_TABLE}` SYNC")
        store.backend.command(events_table_statement("bare", projections=False))
        sink_store = EventStore(store.backend, "sink")
        sink_store.migrate()
        sink = Sink(sink_store, cache_events=1_000_000, window_ms=3_600_000)
        sink.warm()
        warm = batches[0][:100]  # each engine path's first insert pays for its set-up: not measured
        store.insert(warm, dedup_token="warm")
        bare.insert(warm, dedup_token="warm")
        for rep in range(2):  # twice, interleaved; the best of each (the machine is shared)
            for name, target in (("insert", store), ("bare", bare)):
                target.backend.command(f"TRUNCATE TABLE `{target.database}`.`{EVENTS_TABLE}`")
                took = timed(lambda t=target, r=rep: [t.insert(b, dedup_token=f"{r}-{i}") for i, b in enumerate(batches)])
                seconds[name] = min(seconds.get(name, took), took)
        seconds["sink"] = timed(
            lambda: [sink.write(b, dedup_token=f"s{i}", batch_id=i + 1) for i, b in enumerate(batches)]
        )
        assert sink_store.stats().rows == len(records)
    return seconds


def fill_topic(env: dict[str, str], records: list[bytes]) -> dict[int, int]:
    """Produce the records keyed by user; returns partition -> last offset."""
    settings = load_settings(env=env)
    ensure_topics(settings)
    producer = Producer(client_config(settings, **{"linger.ms": 50, "compression.type": "lz4", "acks": "all"}))
    last: dict[int, int] = {}

    def report(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    for record in records:
        user = decode_event(record).user_id.encode()
        while True:
            try:
                producer.produce(settings.topic, key=user, value=record, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return last


def worker_process(env: dict[str, str], last: dict[int, int], count: int) -> tuple[float, int]:
    """Run `streamtrack worker` until it committed everything; (steady events/s, peak RSS bytes)."""
    settings = load_settings(env=env)
    config = client_config(settings)
    folder = Path(env["STREAMTRACK_DATA_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "worker.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([str(Path(sys.executable).parent / "streamtrack"), "worker"], env={**os.environ, **env},
                               stdout=log, stderr=subprocess.STDOUT)
    samples: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            committed = committed_offsets(config, settings.consumer_group, settings.topic, timeout=10, of=list(last))
            done = sum(max(offset, 0) for offset in committed.values())
            samples.append((time.perf_counter(), done))
            if all(committed[p] > offset for p, offset in last.items()):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the worker did not store everything within 600 s")
    finally:
        process.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(process.pid, 0)
        log.close()
    started = next((s for s in samples if s[1] > 0), samples[0])
    rate = (samples[-1][1] - started[1]) / max(samples[-1][0] - started[0], 1e-9)
    return rate, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    tune_gc()
    records = make_events(args.events)
    data = Path(tempfile.mkdtemp(prefix="streamtrack-bench-worker-"))
    seconds = in_process(records, args.batch, data / "in-process")
    with KafkaCluster(data / "kafka", nodes=1) as kafka:
        suffix = uuid.uuid4().hex[:6]
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "STREAMTRACK_TOPIC": f"bench-{suffix}",
            "STREAMTRACK_DLQ_TOPIC": f"bench-{suffix}.dlq", "STREAMTRACK_CONSUMER_GROUP": f"bench-{suffix}",
            "STREAMTRACK_TOPIC_PARTITIONS": "6", "STREAMTRACK_DATA_DIR": str(data / "worker"),
            "STREAMTRACK_BATCH_MAX_EVENTS": str(args.batch), "STREAMTRACK_LOG_LEVEL": "warning",
            "STREAMTRACK_WORKER_METRICS_PORT": "0", "STREAMTRACK_SESSION_TIMEOUT_MS": "6000",
        }
        last = fill_topic(env, records)
        rate, rss = worker_process(env, last, args.events)
    n = args.events
    ceiling = n / seconds["insert"]
    rows = [
        ("ceiling: EventStore.insert (events table)", f"{ceiling:,.0f}", "1.00", ""),
        ("insert without the projections", f"{n / seconds['bare']:,.0f}", f"{seconds['insert'] / seconds['bare']:.2f}",
         f"write amplification {seconds['insert'] / seconds['bare']:.2f}"),
        ("Sink.write (dedup + erasures + insert)", f"{n / seconds['sink']:,.0f}", f"{seconds['insert'] / seconds['sink']:.2f}", ""),
        ("streamtrack worker (Kafka -> ClickHouse)", f"{rate:,.0f}", f"{rate / ceiling:.2f}", f"peak RSS {rss / 2**20:,.0f} MiB"),
    ]
    header = ("path", "events/s", "x ceiling", "notes")
    widths = [max(len(r[i]) for r in (*rows, header)) for i in range(len(header))]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print(f"\n{n:,} events in batches of {args.batch:,}; {os.cpu_count()} cores; embedded ClickHouse; "
          f"Apache Kafka single node; self RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
