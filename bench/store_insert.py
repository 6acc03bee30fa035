"""How fast EventStore.insert stores batches: prints rows, seconds and rows/s per batch size.

    python bench/store_insert.py [--batch 10000] [--batches 30]

Embedded by default (a throwaway data folder); with CLICKHOUSE_URL set, that server (a
throwaway database, dropped afterwards). Events are realistic (ids, URLs, user agents,
nested properties) and built before timing starts; the timed part is what the worker
pays per batch: Events -> Arrow -> ClickHouse, with a deduplication token. The target is
>= 300k events/s for 10k-event batches on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import tempfile
import time

from streamtrack.config import load_settings
from streamtrack.events import Event
from streamtrack.store import open_store
from streamtrack.store.codec import events_to_arrow

TYPES = ["page_view", "click", "signup", "purchase", "scroll"]
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def make_events(count: int, start_ms: int, rng: random.Random) -> list[Event]:
    return [
        Event(
            event_id=secrets.token_hex(16),
            event_type=rng.choice(TYPES),
            timestamp=start_ms + i,
            received_at=start_ms + i + rng.randrange(5, 500),
            user_id=f"user-{rng.randrange(50_000)}",
            anonymous_id=f"anon-{rng.randrange(1_000_000):x}",
            session_id=f"sess-{rng.randrange(200_000):x}",
            url=f"https://shop.example.com/products/{rng.randrange(5_000)}?ref=home",
            referrer="https://www.google.com/",
            channel=rng.choice(["web", "ios", "android"]),
            campaign_id=rng.choice(["", "spring-sale", "newsletter-42"]),
            tags=rng.sample(["beta", "mobile", "returning", "vip"], rng.randrange(3)),
            properties={
                "plan": "pro",
                "price": rng.randrange(100, 10_000) / 100,
                "items": [{"sku": "A-1", "qty": 2}],
            },
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            user_agent=AGENT,
        )
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[1_000, 10_000, 50_000], help="events per insert"
    )
    parser.add_argument("--events", type=int, default=300_000, help="events per batch size")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="streamtrack-bench-") as data_dir:
        settings = load_settings(data_dir=data_dir, clickhouse_database=f"bench_{secrets.token_hex(4)}")
        store = open_store(settings)
        try:
            store.migrate()
            rows = [run(store, batch, args.events) for batch in args.batch]
            total = store.stats()
        finally:
            store.drop_database()
            store.close()

    cores = os.cpu_count()
    header = f"{'backend':<9} {'cores':>5} {'batch':>7} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'arrow ms':>9} {'insert ms':>10}"
    print(header)
    print("-" * len(header))
    for batch, count, seconds, arrow_ms, insert_ms in rows:
        print(
            f"{store.backend.name:<9} {cores:>5} {batch:>7} {count:>8} {seconds:>8.3f} {count / seconds:>9,.0f}"
            f" {arrow_ms:>9.1f} {insert_ms:>10.1f}"
        )
    print(f"stored rows: {total.rows}, distinct events: {total.distinct_events}")


def run(store, batch: int, events: int) -> tuple[int, int, float, float, float]:  # type: ignore[no-untyped-def]
    """Insert `events` events in batches of `batch`: (batch, rows, seconds inserting, median ms
    building the Arrow table, median ms per insert call). Like the worker, only one batch
    is in memory at a time; generating it is not timed."""
    rng = random.Random(batch)
    store.insert(make_events(10, 1_700_000_000_000, rng), dedup_token=secrets.token_hex(16))  # warm-up
    arrow_times, insert_times = [], []
    count = 0
    for n in range(max(1, events // batch)):
        events_batch = make_events(batch, 1_750_000_000_000 + n * batch, rng)
        t0 = time.perf_counter()
        events_to_arrow(events_batch)  # the Python half of the work, measured apart
        t1 = time.perf_counter()
        store.insert(events_batch, dedup_token=secrets.token_hex(16))
        insert_times.append(time.perf_counter() - t1)
        arrow_times.append(t1 - t0)
        count += len(events_batch)
    return (
        batch,
        count,
        sum(insert_times),
        statistics.median(arrow_times) * 1000,
        statistics.median(insert_times) * 1000,
    )


if __name__ == "__main__":
    main()
