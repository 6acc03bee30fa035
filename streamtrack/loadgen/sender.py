"""Sending the traffic: paced, bounded, single or batch requests, every outcome counted.

One asyncio loop and one aiohttp connection pool (not httpx, whose async pool slowed down as
connections were added while aiohttp's did not: docs/benchmarks.md, "Measurements behind
design choices"). A pacer spaces requests to the target
rate; when the API is slower than the target, the pacer lets the generator catch up, but
never by more than `max_debt_s` worth of events at once, so a stall is not followed by a
flood. At most `concurrency` requests are in flight. A 503 or a transport error is retried
(the events keep their `event_id`, so a retry is stored once); a rejected event is not.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

from streamtrack.loadgen.stats import LoadStats
from streamtrack.loadgen.traffic import Traffic

TARGET_REQUESTS_PER_S = 100
"""Auto batch size keeps requests at or below this: the API's cost is mostly per request, so
high rates need batches, and large ones (docs/benchmarks.md, "Measurements behind design
choices": batches of 100 reach 10,000 events/s against `streamtrack dev`, batches of 50 do not)."""
MAX_AUTO_BATCH = 500
RETRYABLE_STATUS = {429, 502, 503, 504}
HEADERS = {"Content-Type": "application/json", "User-Agent": "streamtrack-loadgen"}

_encode = msgspec.json.Encoder().encode


def auto_batch_size(rate: float | None) -> int:
    """1 (single /track requests) up to 100 events/s, then enough per /batch to stay near 100 requests/s."""
    if rate is None:
        return 100
    return min(max(1, math.ceil(rate / TARGET_REQUESTS_PER_S)), MAX_AUTO_BATCH)


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    url: str
    rate: float | None = 100.0
    """Target events per second; None sends as fast as the API answers."""
    duration_s: float | None = None
    count: int | None = None
    """Stop after this many events (whichever of duration and count comes first)."""
    batch_size: int = 1
    """1 sends each event to /track; more sends them to /batch in arrays of this size."""
    concurrency: int = 16
    retries: int = 3
    timeout_s: float = 30.0
    key: str | None = None
    """A write key of the project to send to (auth on); sent as `Authorization: Bearer`."""

    def __post_init__(self) -> None:
        if self.rate is not None and not self.rate > 0:
            raise ValueError("rate must be positive (or None for as fast as possible)")
        if self.batch_size < 1 or self.concurrency < 1 or self.retries < 0:
            raise ValueError("batch_size and concurrency must be at least 1, retries at least 0")
        if self.count is not None and self.count < 0:
            raise ValueError("count must not be negative")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError("duration must be positive")


class Pacer:
    """When the next request may go, for a target rate in events per second."""

    def __init__(self, rate: float | None, *, max_debt_s: float = 0.5) -> None:
        self.rate = rate
        self.max_debt_s = max_debt_s
        self._next: float | None = None

    def delay(self, events: int, now: float) -> float:
        """Seconds to wait before sending `events` at time `now`, and book them."""
        if self.rate is None:
            return 0.0
        if self._next is None:
            self._next = now
        # Behind schedule: catch up, but forgive any debt beyond max_debt_s (no flood).
        self._next = max(self._next, now - self.max_debt_s)
        wait = self._next - now
        self._next += events / self.rate
        return max(wait, 0.0)


async def run_load(
    plan: LoadPlan,
    traffic: Traffic,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    progress_interval_s: float = 1.0,
) -> LoadStats:
    """Send until the count or duration is reached or `stop` is set; in-flight requests finish."""
    stop = stop or asyncio.Event()
    stats = LoadStats(plan.rate)
    pacer = Pacer(plan.rate)
    deadline = stats.started + plan.duration_s if plan.duration_s is not None else math.inf
    remaining = plan.count if plan.count is not None else math.inf
    url = plan.url.rstrip("/") + ("/track" if plan.batch_size == 1 else "/batch")
    slots = asyncio.Semaphore(plan.concurrency)
    in_flight: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    progress = asyncio.create_task(_report(stats, on_progress, progress_interval_s)) if on_progress else None
    headers = {**HEADERS, **({"Authorization": f"Bearer {plan.key}"} if plan.key else {})}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as client:
        while remaining > 0 and not stop.is_set():
            await slots.acquire()
            n = int(min(plan.batch_size, remaining))
            wait = pacer.delay(n, time.monotonic())
            if wait > 0 and await _stopped_within(stop, wait):
                slots.release()
                break
            if time.monotonic() >= deadline:
                slots.release()
                break
            events = traffic.take(n)
            remaining -= n
            task = asyncio.create_task(_send(client, url, events, stats, plan.retries))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            task.add_done_callback(lambda _: slots.release())
        if in_flight:
            await asyncio.gather(*in_flight)
    stats.finish()
    if progress is not None and on_progress is not None:
        progress.cancel()
        on_progress(stats.snapshot())
    return stats


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except TimeoutError:
        return False


async def _report(stats: LoadStats, on_progress: Callable[[dict[str, Any]], None], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        on_progress(stats.snapshot())


async def _send(client: aiohttp.ClientSession, url: str, events: list[dict[str, Any]], stats: LoadStats, retries: int) -> None:
    """One request, retried for what may succeed later; every event ends accepted or counted as an error."""
    pending = events
    for attempt in range(retries + 1):
        accepted, retry, failed, retry_after = await _attempt(client, url, pending, stats)
        stats.record_events(accepted, failed)
        if not retry:
            return
        if attempt == retries:
            stats.record_events(0, dict(collections.Counter(reason for reason, _ in retry)))
            return
        stats.retries += len(retry)
        pending = [event for _, event in retry]
        await asyncio.sleep(min(retry_after, 2.0) * (attempt + 1))


async def _attempt(
    client: aiohttp.ClientSession, url: str, events: list[dict[str, Any]], stats: LoadStats
) -> tuple[int, list[tuple[str, dict[str, Any]]], dict[str, int], float]:
    """(accepted, [(reason, event) to retry], {reason: events failed for good}, seconds to wait)."""
    single = url.endswith("/track")
    body = _encode(events[0] if single else events)
    started = time.perf_counter()
    try:
        async with client.post(url, data=body) as response:
            status, payload = response.status, await response.read()
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:  # no answer: maybe stored, maybe not; retrying the same ids is safe
        return 0, [(type(exc).__name__, e) for e in events], {}, 0.2
    stats.record_request(time.perf_counter() - started)
    results = None if single else _batch_results(status, payload)
    if results is not None:
        return _batch_outcome(results, events, retry_after)
    if status == 202:
        return len(events), [], {}, 0.0
    if status in RETRYABLE_STATUS:
        return 0, [(str(status), e) for e in events], {}, retry_after
    return 0, [], {str(status): len(events)}, 0.0


def _batch_outcome(
    results: list[dict[str, Any]], events: list[dict[str, Any]], retry_after: float
) -> tuple[int, list[tuple[str, dict[str, Any]]], dict[str, int], float]:
    accepted = 0
    retry: list[tuple[str, dict[str, Any]]] = []
    failed: dict[str, int] = {}
    for item in results:
        if item["status"] == "accepted":
            accepted += 1
        elif item["status"] == "failed":
            retry.append((item.get("code") or "failed", events[item["index"]]))
        else:
            code = item.get("code") or "rejected"
            failed[code] = failed.get(code, 0) + 1
    return accepted, retry, failed, retry_after


def _batch_results(status: int, payload: bytes) -> list[dict[str, Any]] | None:
    """The per-event results of a /batch answer (202, 422 or 503); None for any other answer."""
    if status not in (202, 422, 503):
        return None
    try:
        body = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    results = body.get("results") if isinstance(body, dict) else None
    return results if isinstance(results, list) else None


def _retry_after(header: str | None) -> float:
    try:
        return max(float(header or "0.5"), 0.1)
    except ValueError:
        return 0.5
