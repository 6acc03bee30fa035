"""Cost of the dashboard's ingest-rate reading (GET /pipeline/status) at 1M and 10M events. Prints a table.

    .venv/bin/python bench/pipeline_status.py [--sizes 1000000 10000000] [--runs 10]

The reading counts distinct event ids received in the last minute. `received_at` is not in
the sorting key (a backfill of old events is still ingestion now), so it scans that column:
this measures what that costs. Rows are generated inside ClickHouse, received over the last
30 days. The API keeps a reading for a second, so open dashboards share it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from streamtrack.config import load_settings
from streamtrack.store import open_store
from streamtrack.store.ingest_rate import ingest_rate

FILL = """
INSERT INTO `{db}`.events (event_id, event_type, timestamp, received_at, user_id, url)
SELECT toString(number + {offset}), 'page_view', now64(3) - toIntervalSecond(number % 2592000),
       now64(3) - toIntervalSecond(number % 2592000), toString(number % 50000), 'https://shop.test/'
FROM numbers({count})
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    settings = load_settings(env={}, data_dir=tempfile.mkdtemp(prefix="bench-status-"), clickhouse_database="bench")
    with open_store(settings) as store:
        store.migrate()
        print("| events stored | ingest rate read | median ms | slowest ms |")
        print("|---|---|---|---|")
        stored = 0
        for size in sorted(args.sizes):
            store.backend.command(FILL.format(db=store.database, offset=stored, count=size - stored))
            stored = size
            ingest_rate(store)  # warm-up
            times, rate = [], 0.0
            for _ in range(args.runs):
                start = time.perf_counter()
                rate = ingest_rate(store)
                times.append((time.perf_counter() - start) * 1000)
            print(f"| {size:,} | {rate:.2f}/s | {statistics.median(times):.1f} | {max(times):.1f} |")
        store.drop_database()


if __name__ == "__main__":
    main()
