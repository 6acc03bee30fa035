"""Token buckets per key and per client address, in bounded memory.

A bucket holds up to `burst` tokens and refills at `rate` per second; a request takes one.
An empty bucket answers how long until the next token (the 429's Retry-After). Buckets live
in an LRU of at most `max_buckets` entries: a flood of new addresses evicts the idlest
buckets (which were refilling anyway) instead of growing without bound. Per replica: with N
API replicas a client gets up to N times the rate, which is what a per-pod limit means.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, rate: float, burst: float, max_buckets: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, updated)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, name: str) -> float:
        """Take a token from `name`'s bucket: 0 if allowed, else seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.pop(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[name] = (tokens, now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_seconds(wait: float) -> int:
    """Retry-After is whole seconds; never 0 (clients would retry at once)."""
    return max(1, math.ceil(wait))
