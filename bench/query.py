"""Latency of the /analytics/* queries on the embedded engine at 1M and 10M events. Prints a table.

    .venv/bin/python -P bench/query.py [--sizes 1000000 10000000] [--runs 10] [--days 30] [--copy-every 2000]

Events are generated inside ClickHouse (numbers()), not through HTTP: spread evenly over
the last `--days` days up to now, 200k users (one in ten anonymous), sessions of 7 events,
200 pages, the load generator's event types, a `plan` property; plus 0.05 % stored copies
of earlier events with a later timestamp (what a worker race leaves; `--copy-every 0`: none)
and two copies across the start of a day 10 days ago and of its week (the active-users case
that reads raw rows),
recorded in the copies registry as `EventStore.insert` does, so the deduplication path that
handles copies is the one measured. Each case calls the reader the endpoint calls (no HTTP:
that adds ~2 ms) on the default project, with the endpoint's default range (the last 7
days), once to warm up and then `--runs` times; the table shows p50 and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from streamtrack.config import load_settings
from streamtrack.events import DEFAULT_PROJECT
from streamtrack.store import EventStore, copies, open_store
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import DAY_MS, Analytics
from streamtrack.store.schema import (
    COPIES_TABLE,
    COPY_ROWS_TABLE,
    DAILY_TABLE,
    EVENT_IDS_TABLE,
    EVENTS_TABLE,
    HOURLY_TABLE,
)
from streamtrack.store.scoped import project_store
from streamtrack.timestamps import now_ms

TYPES = "['page_view','page_view','page_view','click','scroll','add_to_cart','signup','checkout_started','purchase']"

FILL = """
INSERT INTO `{db}`.events (event_id, event_type, timestamp, received_at, user_id, anonymous_id, session_id, url,
    referrer, channel, campaign_id, properties)
SELECT concat('e', toString(number)), {types}[number % 9 + 1],
       fromUnixTimestamp64Milli(toInt64({start} + intDiv(number * {span}, {total}))) AS ts, ts,
       if(cityHash64(number) % 10 = 0, '', concat('u', toString(cityHash64(number) % 200000))),
       concat('a', toString(cityHash64(number) % 200000)),
       concat('s', toString(intDiv(number, 7))), concat('https://shop.test/p/', toString(cityHash64(number, 1) % 200)),
       ['', 'https://google.com/', 'https://news.example/'][number % 3 + 1], ['web', 'email', 'ads', 'social'][number % 4 + 1],
       concat('c', toString(number % 20)), concat('{{"plan":"', ['free', 'pro', 'team'][number % 3 + 1], '"}}')
FROM numbers({count})
SETTINGS optimize_on_insert = 0
"""
# Copies of the events `where` selects, `delay` seconds later (same id, all else equal).
COPIES = """
INSERT INTO `{db}`.events (event_id, event_type, timestamp, received_at, user_id, anonymous_id, session_id, url,
    referrer, channel, campaign_id, properties)
SELECT event_id, event_type, timestamp + INTERVAL {delay} SECOND, received_at, user_id, anonymous_id, session_id, url,
       referrer, channel, campaign_id, properties
FROM `{db}`.events WHERE {where}
"""


# A copy across the start of this day (days ago) and one across the start of its week: DAU/WAU
# then come from the week's raw rows instead of the daily rollup.
CROSSED_DAYS_AGO = 10


def cases(reader: Analytics, now: int) -> dict[str, Callable[[], object]]:
    week = Filter(start_ms=now - 7 * DAY_MS, end_ms=now)
    crossed = now // DAY_MS * DAY_MS - CROSSED_DAYS_AGO * DAY_MS
    return {
        "overview (all time)": lambda: reader.overview(now_ms=now),
        "timeseries (7 d, hourly)": lambda: reader.timeseries(week, interval="hour"),
        "timeseries by event_type (top 5)": lambda: reader.timeseries(
            week, interval="hour", group_by="event_type"
        ),
        "breakdown channel": lambda: reader.breakdown(week, by="channel", limit=20),
        "breakdown url": lambda: reader.breakdown(week, by="url", limit=20),
        "breakdown property:plan": lambda: reader.breakdown(week, by="property:plan", limit=20),
        "top-pages": lambda: reader.top_pages(week, limit=10),
        "active-users (DAU/WAU/MAU)": lambda: reader.active_users(
            now_ms=now, window_minutes=5, day_ms=now // DAY_MS * DAY_MS
        ),
        "active-users, copies across day/week start": lambda: reader.active_users(
            now_ms=now, window_minutes=5, day_ms=crossed
        ),
        "sessions": lambda: reader.sessions(week),
        "funnel (4 steps, 1 h)": lambda: reader.funnel(
            week, steps=["page_view", "add_to_cart", "checkout_started", "purchase"], window_seconds=3600
        ),
        "retention (8 days)": lambda: reader.retention(
            Filter(start_ms=now // DAY_MS * DAY_MS - 7 * DAY_MS, end_ms=now), period="day", periods=8
        ),
    }


def timed(call: Callable[[], object], runs: int) -> tuple[float, float]:
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if len(times) > 1 else times[0]
    return statistics.median(times), p95


def fill(store: EventStore, *, size: int, start: int, span: int, copy_every: int = 2000) -> None:
    for table in (EVENTS_TABLE, EVENT_IDS_TABLE, COPIES_TABLE, COPY_ROWS_TABLE, DAILY_TABLE, HOURLY_TABLE):
        store.backend.command(f"TRUNCATE TABLE `{store.database}`.`{table}`")
    store.backend.command(
        FILL.format(db=store.database, types=TYPES, start=start, span=span, total=size, count=size)
    )
    if not copy_every:
        return
    # every `--copy-every`th event, 90 s later
    where = f"toUInt64(substring(event_id, 2)) % {copy_every} = 0"
    store.backend.command(COPIES.format(db=store.database, delay=90, where=where))
    day = (start + span) // DAY_MS * DAY_MS - CROSSED_DAYS_AGO * DAY_MS
    crossing = []
    for bound in (day, day - 6 * DAY_MS):
        crossing += [row[0] for row in store.backend.query(
            f"SELECT event_id FROM `{store.database}`.events WHERE timestamp >= fromUnixTimestamp64Milli({bound - 60_000})"
            f" AND timestamp < fromUnixTimestamp64Milli({bound}) LIMIT 1"
        )]
    store.backend.command(COPIES.format(db=store.database, delay=120, where="event_id IN {ids:Array(String)}"), {"ids": crossing})
    # What EventStore.insert does after an insert: record the batch's ids stored more than once.
    for statement in copies.record(store.database, [f"e{n}" for n in range(0, size, copy_every)] + crossing):
        store.backend.command(statement.sql, statement.params)


def measure(
    store: EventStore, sizes: list[int], runs: int, days: int, copy_every: int
) -> dict[str, dict[int, str]]:
    """p50 / p95 text per case and size. Each size is a fresh table over the same span: density grows."""
    reader = Analytics(project_store(store, DEFAULT_PROJECT))  # as the API reads: one project, no bots
    results: dict[str, dict[int, str]] = {}
    for size in sizes:
        now = now_ms()
        fill(store, size=size, start=now - days * DAY_MS, span=days * DAY_MS, copy_every=copy_every)
        stats = store.stats()
        print(f"{size:,} events ({stats.rows - stats.distinct_events:,} stored copies) over {days} days", flush=True)
        for name, call in cases(reader, now).items():
            p50, p95 = timed(call, runs)
            results.setdefault(name, {})[size] = f"{p50:.0f} / {p95:.0f}"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--days", type=int, default=30, help="the events span the last DAYS days")
    parser.add_argument(
        "--copy-every", type=int, default=2000, help="store a copy of every Nth event (0: no copies)"
    )
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory(prefix="streamtrack-bench-query-") as data_dir:
        settings = load_settings(env={}, data_dir=data_dir, clickhouse_database="bench")
        with open_store(settings) as store:
            store.migrate()
            results = measure(store, sizes, args.runs, args.days, args.copy_every)
    header = ("query", *(f"{size:,} events: p50 / p95 ms" for size in sizes))
    rows = [(name, *(by_size[size] for size in sizes)) for name, by_size in results.items()]
    widths = [max(len(r[i]) for r in (*rows, header)) for i in range(len(header))]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print(
        f"\nembedded ClickHouse (chdb), {os.cpu_count()} cores, {args.runs} runs each after a warm-up, "
        f"events over the last {args.days} days"
    )


if __name__ == "__main__":
    main()
