"""Key → project, with a short-lived cache in each API replica.

Each replica asks ClickHouse about a key at most once per STREAMTRACK_KEY_CACHE_SECONDS
(answers "no such key" included, so a client hammering with a bad key costs no queries),
which bounds how long a revoked key keeps working: revocation takes effect everywhere
within that many seconds. The cache is bounded (LRU beyond `max_entries`).
"""

from __future__ import annotations

import threading

from cachetools import TTLCache

from streamtrack.auth.keys import MAX_KEY_CHARS, Principal, hash_key
from streamtrack.store import EventStore
from streamtrack.store.keys import find_key


class KeyResolver:
    def __init__(self, store: EventStore, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self.store = store
        self._cache: TTLCache[str, Principal | None] = TTLCache(maxsize=max_entries, ttl=max(ttl_seconds, 0.001))
        self._lock = threading.Lock()

    def cached(self, secret: str) -> tuple[bool, Principal | None]:
        """(known, principal) from the cache alone: never blocks, so the API asks it on the event loop."""
        if not secret or len(secret) > MAX_KEY_CHARS:
            return True, None
        key_hash = hash_key(secret)
        with self._lock:
            if key_hash in self._cache:
                return True, self._cache[key_hash]
        return False, None

    def resolve(self, secret: str) -> Principal | None:
        """The key's project and kind, or None for an unknown or revoked key. Blocking (may query)."""
        known, principal = self.cached(secret)
        if known:
            return principal
        key_hash = hash_key(secret)
        principal = find_key(self.store, key_hash)
        with self._lock:
            self._cache[key_hash] = principal
        return principal
