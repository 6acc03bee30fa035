"""Latency of the /activities query on the embedded engine at 1M and 10M events. Prints a table.

    .venv/bin/python bench/activities.py [--sizes 1000000 10000000] [--runs 7]

Rows are generated inside ClickHouse (numbers()), not through HTTP: 100k users, 1M
sessions, four event types, one event every 300 ms. Each query runs `--runs` times after a
warm-up; the table shows the median and the slowest run, for the first page and the next.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from streamtrack.config import load_settings
from streamtrack.store import EventStore, open_store

T0 = 1_760_000_000_000
STEP_MS = 300

FILL = """
INSERT INTO `{db}`.events (event_id, event_type, timestamp, received_at, user_id, session_id, url, properties)
SELECT toString(generateUUIDv4()), ['page_view','click','scroll','purchase'][number % 4 + 1],
       fromUnixTimestamp64Milli(toInt64({t0} + number * {step})), fromUnixTimestamp64Milli(toInt64({t0} + number * {step})),
       concat('u', toString(number % 100000)), concat('s', toString(number % 1000000)),
       concat('https://shop.test/p/', toString(number % 50)), '{{}}'
FROM numbers({offset}, {count})
"""


def timed(store: EventStore, runs: int, **query: object) -> tuple[float, float, list]:
    store.activities(limit=100, **query)  # type: ignore[arg-type]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        page = store.activities(limit=100, **query)  # type: ignore[arg-type]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    settings = load_settings(env={}, data_dir=tempfile.mkdtemp(prefix="streamtrack-bench-"), clickhouse_database="bench")
    store = open_store(settings)
    store.migrate()
    span = max(args.sizes) * STEP_MS
    cases = {
        "newest 100": {},
        "one user": {"user_id": "u42"},
        "one event type": {"event_type": "click"},
        "a time range": {"start_ms": T0 + span // 3, "end_ms": T0 + span // 2},
    }
    rows = []
    loaded = 0
    for size in sorted(args.sizes):
        store.backend.command(FILL.format(db="bench", t0=T0, step=STEP_MS, offset=loaded, count=size - loaded))
        loaded = size
        for name, query in cases.items():
            median, worst, page = timed(store, args.runs, **query)
            after = (page[-1].timestamp, page[-1].event_id) if page else None
            next_median, next_worst, _ = timed(store, args.runs, after=after, **query)
            rows.append((f"{size:,}", name, f"{median:.0f} / {worst:.0f}", f"{next_median:.0f} / {next_worst:.0f}"))
    header = ("events", "query", "page 1 ms (median / max)", "page 2 ms (median / max)")
    widths = [max(len(r[i]) for r in (*rows, header)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print(f"\nembedded ClickHouse (chdb), {os.cpu_count()} cores, {args.runs} runs each")


if __name__ == "__main__":
    main()
