"""Archive and replay throughput: the archive writer alone, then `streamtrack replay`'s produce rate.

    .venv/bin/python bench/archive.py                  # 200k events, 6 partitions
    .venv/bin/python bench/archive.py --events 1000000

One Apache Kafka node and one SeaweedFS (`weed server`, built by `make go-tools`) on loopback,
started here and stopped at the end. The events topic is filled first (canonical events of
two projects, ~300 bytes each); then one archive writer (batches of
STREAMTRACK_ARCHIVE_BATCH_MAX_EVENTS) archives it all: events/s, objects, compressed bytes.
Then one replay of the whole archive into a second topic: events/s read, decoded and produced
(acknowledged by the broker).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.fixtures; appended, so the repository's operator/ never shadows the stdlib

from confluent_kafka import Producer  # noqa: E402

from streamtrack.archive import ArchiveWriter  # noqa: E402
from streamtrack.archive.reader import Selection  # noqa: E402
from streamtrack.config import load_settings  # noqa: E402
from streamtrack.events import Event, encode_event  # noqa: E402
from streamtrack.kafka import client_config, ensure_topics  # noqa: E402
from streamtrack.kafka.apache import KafkaCluster  # noqa: E402
from streamtrack.replay import replay  # noqa: E402
from tests.fixtures.seaweedfs import SeaweedFS  # noqa: E402


def fill(settings: object, events: int) -> None:
    producer = Producer(client_config(settings, **{"linger.ms": 50, "compression.type": "lz4"}))  # type: ignore[arg-type]
    now = int(time.time() * 1000)
    for i in range(events):
        event = Event(event_id=uuid.uuid4().hex, event_type=("page_view", "add_to_cart", "purchase")[i % 3],
                      timestamp=now - i, received_at=now - i // 10, user_id=f"user-{i % 5000}", session_id=f"s-{i % 9000}",
                      url=f"https://shop.example/p/{i % 400}", channel="web", properties={"plan": "pro", "n": i % 100},
                      project_id=("shop", "blog")[i % 2])
        while True:
            try:
                producer.produce(settings.topic, value=encode_event(event), key=event.user_id.encode())  # type: ignore[attr-defined]
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        work = Path(tmp)
        weed = SeaweedFS(work / "seaweedfs")
        with KafkaCluster(work / "kafka", nodes=1) as kafka:
            weed.start()
            try:
                env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "STREAMTRACK_TOPIC": "bench-events",
                       "STREAMTRACK_DLQ_TOPIC": "bench-events.dlq", "STREAMTRACK_TOPIC_PARTITIONS": str(args.partitions),
                       "STREAMTRACK_ARCHIVE_BATCH_MAX_WAIT_MS": "2000", **weed.env()}
                settings = load_settings(env=env)
                ensure_topics(settings)
                started = time.monotonic()
                fill(settings, args.events)
                print(f"filled {args.events} events in {time.monotonic() - started:.1f} s", flush=True)

                writer = ArchiveWriter(settings)
                thread = threading.Thread(target=writer.run, daemon=True)
                started = time.monotonic()
                thread.start()
                while writer.stats.events < args.events:
                    time.sleep(0.05)
                seconds = time.monotonic() - started
                writer.stop()
                thread.join(30)
                stats = writer.stats

                target = settings.replace(topic="bench-replayed")
                ensure_topics(target)
                summary = replay(target, Selection())
                print(f"\n| measure | value |\n|---|---|\n"
                      f"| archive writer (incl. group join) | {args.events / seconds:,.0f} events/s ({seconds:.1f} s) |\n"
                      f"| objects / batches | {stats.objects} / {stats.batches} |\n"
                      f"| compressed bytes | {stats.bytes:,} ({stats.bytes / args.events:.0f} B/event) |\n"
                      f"| replay (read, decode, produce, acked) | {summary.events_per_s:,.0f} events/s"
                      f" ({summary.events} in {summary.seconds:.1f} s) |")
            finally:
                weed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
