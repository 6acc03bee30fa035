"""What keys, rate limits and the bot filter cost: per-operation times and a read endpoint with auth off vs on.

    .venv/bin/python bench/auth.py [--requests 2000]

Embedded ClickHouse in a temporary folder (removed at the end); the HTTP part serves the real
app on loopback (no broker needed: only GET /activities is called) and times sequential requests.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import httpx

from streamtrack.api import Services, create_app
from streamtrack.api.server import BackgroundServer
from streamtrack.auth.bots import BotFilter
from streamtrack.auth.keys import KeyKind, hash_key, new_key
from streamtrack.auth.ratelimit import RateLimiter
from streamtrack.auth.resolver import KeyResolver
from streamtrack.config import load_settings
from streamtrack.events import Event
from streamtrack.kafka import EventProducer
from streamtrack.normalize import Limits
from streamtrack.store import open_store
from streamtrack.store.keys import add_key, create_project, find_key, migrate_keys


def per_op(action: Callable[[], object], n: int) -> float:
    """Microseconds per call."""
    started = time.perf_counter()
    for _ in range(n):
        action()
    return (time.perf_counter() - started) / n * 1e6


def http_ms(url: str, headers: dict[str, str], n: int) -> tuple[float, float]:
    times = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for _ in range(n):
            started = time.perf_counter()
            assert client.get("/activities", params={"limit": "1"}).status_code == 200
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="bench-auth-")
    rows: list[tuple[str, str]] = []
    try:
        settings = load_settings(env={}, data_dir=data_dir, clickhouse_database="bench", rate_limit_key_per_s=0,
                                 rate_limit_address_per_s=0)
        store = open_store(settings)
        store.migrate()
        migrate_keys(store)
        create_project(store, "bench", "bench")
        read = new_key(KeyKind.READ)
        add_key(store, "bench", read)

        rows.append(("hash a key (SHA-256)", f"{per_op(lambda: hash_key(read.secret), 100_000):.2f} µs"))
        cached = KeyResolver(store, ttl_seconds=3600)
        cached.resolve(read.secret)
        rows.append(("key lookup, cached", f"{per_op(lambda: cached.resolve(read.secret), 100_000):.2f} µs"))
        rows.append(("key lookup, ClickHouse (cache miss)", f"{per_op(lambda: find_key(store, read.hash), 300) / 1000:.2f} ms"))
        limiter = RateLimiter(rate=1e9, burst=1e9)
        rows.append(("token bucket take", f"{per_op(lambda: limiter.take('10.0.0.1'), 1_000_000):.2f} µs"))
        events = [Event(event_id=f"e{i}", event_type="click", timestamp=1_769_860_800_000 + i * 37, received_at=0,
                        user_id=f"u{i % 1000}", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
                  for i in range(10_000)]
        bots = BotFilter(limit=10)
        rows.append(("bot filter, per event (batches of 10k)", f"{per_op(lambda: bots.bots(events), 20) / len(events):.2f} µs"))

        for auth in (False, True):
            app_settings = settings.replace(auth=auth)
            services = Services(app_settings, EventProducer(app_settings), store, Limits())
            server = BackgroundServer(create_app(services)).start()
            try:
                headers = {"Authorization": f"Bearer {read.secret}"} if auth else {}
                http_ms(server.url, headers, 100)  # warm-up
                p50, p95 = http_ms(server.url, headers, args.requests)
                label = "on (cached key)" if auth else "off"
                rows.append((f"GET /activities?limit=1, auth {label}", f"p50 {p50:.2f} ms, p95 {p95:.2f} ms"))
            finally:
                server.stop()
                services.close()
        store.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"| {'operation':{width}} | cost |\n|{'-' * (width + 2)}|---|")
    for name, value in rows:
        print(f"| {name:{width}} | {value} |")


if __name__ == "__main__":
    main()
