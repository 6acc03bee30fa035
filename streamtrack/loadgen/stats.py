"""What a load run achieved: events sent, accepted and failed, rate, request latency.

Latency goes into an HdrHistogram (microseconds, 3 significant digits): constant memory
and exact-enough percentiles however long the run, where a list of samples would grow
without bound. Counts are of events, not requests, so single and batch mode compare.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_LATENCY_US = 120_000_000  # 2 minutes: anything slower is recorded as 2 minutes


class LoadStats:
    """Counters and latency of one run; updated by one event loop, read by its progress task."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self._cpu_started = time.process_time()
        self.finished: float | None = None
        self.sent = 0
        """Events whose request got an answer or failed for good (retries included once)."""
        self.accepted = 0
        self.errors = 0
        self.retries = 0
        self.requests = 0
        self.errors_by_reason: collections.Counter[str] = collections.Counter()
        """Failed events by cause: the HTTP status ("503"), a batch item's code, or the transport error."""
        self._latency = HdrHistogram(1, MAX_LATENCY_US, 3)

    def record_request(self, seconds: float) -> None:
        self.requests += 1
        self._latency.record_value(min(max(int(seconds * 1_000_000), 1), MAX_LATENCY_US))

    def record_events(self, accepted: int, failed: dict[str, int] | None = None) -> None:
        failed = failed or {}
        self.accepted += accepted
        self.sent += accepted + sum(failed.values())
        for reason, n in failed.items():
            self.errors += n
            self.errors_by_reason[reason] += n

    def finish(self) -> None:
        self.finished = time.monotonic()

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def percentile_ms(self, percentile: float) -> float:
        if self._latency.get_total_count() == 0:
            return 0.0
        return self._latency.get_value_at_percentile(percentile) / 1000

    def snapshot(self) -> dict[str, Any]:
        """The status shape of GET /dev/loadgen (plus details); achieved_rate = accepted events/s."""
        elapsed = self.elapsed
        return {
            "running": self.finished is None,
            "rate": self.rate,
            "sent": self.sent,
            "accepted": self.accepted,
            "errors": self.errors,
            "achieved_rate": round(self.accepted / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(self.percentile_ms(50), 2),
            "p95_ms": round(self.percentile_ms(95), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "elapsed_s": round(elapsed, 2),
            "requests": self.requests,
            "retries": self.retries,
            "errors_by_reason": dict(self.errors_by_reason),
            "cpu_s": round(time.process_time() - self._cpu_started, 2),  # the generator's own cost
        }


def progress_line(status: dict[str, Any]) -> str:
    """One human line: `12.0s sent 12000 (1000.1/s) errors 0 p50 3.1 p95 7.9 p99 12.0 ms`."""
    reasons = status.get("errors_by_reason") or {}
    detail = " (" + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) + ")" if reasons else ""
    return (
        f"{status['elapsed_s']:7.1f}s  sent {status['sent']:>9}  accepted {status['accepted']:>9} "
        f"({status['achieved_rate']:,.1f}/s)  errors {status['errors']}{detail}  "
        f"p50 {status['p50_ms']:.1f}  p95 {status['p95_ms']:.1f}  p99 {status['p99_ms']:.1f} ms"
    )
