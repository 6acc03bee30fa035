"""Latency of the /analytics/* queries on the embedded engine at 1M and 10M events. Prints a table.

    .venv/bin/python bench/query.py [--sizes 1000000 10000000 100000000] [--runs 10] [--days 30]

Events are generated inside ClickHouse (numbers(), in chunks of 10M), not through HTTP:
spread evenly over the last `--days` days up to now, 200k users (one in ten anonymous),
sessions of 7 events, 200 pages, the load generator's event types, a `plan` property, and a
second project with a tenth of the events (the tenant-first key skips its granules). Each
event is stored once, as the worker stores them. Each case calls the reader the endpoint
calls (no HTTP: that adds ~2 ms) on the default project, with the endpoint's default range
(the last 7 days), once to warm up and then `--runs` times; the table shows p50 and p95 in
milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from streamtrack.config import load_settings
from streamtrack.events import DEFAULT_PROJECT
from streamtrack.store import EventStore, open_store
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import DAY_MS, Analytics
from streamtrack.store.backend import Backend
from streamtrack.store.schema import EVENTS_TABLE
from streamtrack.store.scoped import project_store
from streamtrack.timestamps import now_ms

TYPES = "['page_view','page_view','page_view','click','scroll','add_to_cart','signup','checkout_started','purchase']"

FILL = """
INSERT INTO `{db}`.events (event_id, event_type, timestamp, received_at, user_id, anonymous_id, session_id, url,
    referrer, channel, campaign_id, properties, project_id)
SELECT concat('e', toString(number)), {types}[number % 9 + 1],
       fromUnixTimestamp64Milli(toInt64({start} + intDiv(number * {span}, {total}))) AS ts, ts,
       if(cityHash64(number) % 10 = 0, '', concat('u', toString(cityHash64(number) % 200000))),
       concat('a', toString(cityHash64(number) % 200000)),
       concat('s', toString(intDiv(number, 7))), concat('https://shop.test/p/', toString(cityHash64(number, 1) % 200)),
       ['', 'https://google.com/', 'https://news.example/'][number % 3 + 1], ['web', 'email', 'ads', 'social'][number % 4 + 1],
       concat('c', toString(number % 20)), concat('{{"plan":"', ['free', 'pro', 'team'][number % 3 + 1], '"}}'),
       if(number % 11 = 10, 'other', 'default')
FROM numbers({first}, {count})
SETTINGS optimize_on_insert = 0
"""
CHUNK = 10_000_000


def cases(reader: Analytics, now: int) -> dict[str, Callable[[], object]]:
    week = Filter(start_ms=now - 7 * DAY_MS, end_ms=now)
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


def fill(store: EventStore, *, size: int, start: int, span: int) -> None:
    store.backend.command(f"TRUNCATE TABLE `{store.database}`.`{EVENTS_TABLE}`")
    for first in range(0, size, CHUNK):
        count = min(CHUNK, size - first)
        store.backend.command(
            FILL.format(db=store.database, types=TYPES, start=start, span=span, total=size, first=first, count=count)
        )
    # Measure a settled table: background merges of the fill would compete with the queries.
    while store.backend.query("SELECT count() FROM system.merges WHERE database = {db:String}", {"db": store.database}) != [(0,)]:
        time.sleep(1)


class WithoutProjections:
    """A backend whose queries read rows only (optimize_use_projections = 0): what the projections save."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.name = backend.name

    def query(self, sql: str, params: Mapping[str, Any] | None = None, settings: Any = None) -> list[tuple[Any, ...]]:
        return self._backend.query(sql, params, {**(settings or {}), "optimize_use_projections": 0})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def measure(store: EventStore, sizes: list[int], runs: int, days: int, compare: bool) -> dict[str, dict[str, str]]:
    """p50 / p95 text per case and column (size, and size without projections when `compare`).
    Each size is a fresh table over the same span: density grows."""
    readers = {"": Analytics(project_store(store, DEFAULT_PROJECT))}  # as the API reads: one project, no bots
    if compare:
        rows_only = EventStore(WithoutProjections(store.backend), store.database)  # type: ignore[arg-type]
        readers[", rows only"] = Analytics(project_store(rows_only, DEFAULT_PROJECT))
    results: dict[str, dict[str, str]] = {}
    for size in sizes:
        now = now_ms()
        started = time.perf_counter()
        fill(store, size=size, start=now - days * DAY_MS, span=days * DAY_MS)
        print(f"{size:,} events over {days} days stored in {time.perf_counter() - started:.0f} s", flush=True)
        for suffix, reader in readers.items():
            for name, call in cases(reader, now).items():
                p50, p95 = timed(call, runs)
                results.setdefault(name, {})[f"{size:,} events{suffix}"] = f"{p50:.0f} / {p95:.0f}"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--days", type=int, default=30, help="the events span the last DAYS days")
    parser.add_argument("--compare-projections", action="store_true",
                        help="also run every case reading rows only (what the projections save)")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory(prefix="streamtrack-bench-query-") as data_dir:
        settings = load_settings(env={}, data_dir=data_dir, clickhouse_database="bench")
        with open_store(settings) as store:
            store.migrate()
            results = measure(store, sizes, args.runs, args.days, args.compare_projections)
    columns = list(next(iter(results.values())))
    header = ("query, p50 / p95 ms", *columns)
    rows = [(name, *(by_column[c] for c in columns)) for name, by_column in results.items()]
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
