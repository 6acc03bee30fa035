"""Erasure against events in flight: the worker drops events of erased ids received before the erasure.

`streamtrack.store.privacy.erase_user` writes a tombstone per erased id, then deletes the
stored events. An event accepted before that and still in Kafka would land afterwards, so
the worker reads the tombstones before each insert and drops what they cover, and again
after it (two small queries per batch): whenever it reads new ones it deletes what they
cover itself — the events (and their identity calls) an insert that raced the erasure
stored, and any the erasure's own DELETE has not reached yet — and only then starts its id
cache again from ClickHouse. Events received after an erasure are new data.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamtrack.events import Event
from streamtrack.store import EventStore
from streamtrack.store.privacy import delete_erased, tombstones_since
from streamtrack.timestamps import now_ms

LOOKBACK_MS = 30 * 86_400_000
"""Tombstones older than this are not loaded: no event stays in Kafka that long (its retention)."""
OVERLAP_MS = 10_000
"""Each refresh reads again the last seconds before the newest tombstone seen (clocks of API pods)."""


class Tombstones:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._erased: dict[tuple[str, str], int] = {}
        self._since = now_ms() - LOOKBACK_MS

    def _read(self) -> dict[tuple[str, str], int]:
        """The tombstones written since the last read."""
        new = {}
        for project, id_, erased_at in tombstones_since(self._store, self._since - OVERLAP_MS):
            key = (project, id_)
            if self._erased.get(key, -1) < erased_at:
                self._erased[key] = new[key] = erased_at
            self._since = max(self._since, erased_at)
        return new

    def _erased_at(self, event: Event, erased: dict[tuple[str, str], int]) -> int | None:
        """When the event's sender was erased, if after the event was received (the rule of
        `privacy.erase_user`: its user id, or its anonymous id when sent anonymously)."""
        at = erased.get((event.project_id, event.user_id or event.anonymous_id))
        return at if at is not None and event.received_at <= at else None

    def screen(self, events: Sequence[Event]) -> list[Event]:
        """`events` without those of erased ids received before their erasure (as known at the
        last `refresh`)."""
        if not self._erased:
            return list(events)
        return [e for e in events if self._erased_at(e, self._erased) is None]

    def refresh(self) -> bool:
        """Read the tombstones written since the last read and apply them to what is stored;
        True if there were new ones (the caller then starts its id cache again)."""
        new = self._read()
        if new:
            self.apply(new)
        return bool(new)

    def apply(self, new: dict[tuple[str, str], int]) -> None:
        """Delete the stored events the new tombstones cover: an insert that raced the erasure,
        whichever batch it was (the erasure's own DELETE may also not have run yet)."""
        by_erasure: dict[tuple[str, int], list[str]] = {}
        for (project, id_), at in new.items():
            by_erasure.setdefault((project, at), []).append(id_)
        for (project, at), ids in by_erasure.items():
            delete_erased(self._store, project, sorted(ids), at)
