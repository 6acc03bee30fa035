"""Erasure against events in flight: the worker drops events of erased ids received before the erasure.

`streamtrack.store.privacy.erase_user` writes a tombstone per erased id, then deletes the
stored events. An event accepted before that and still in Kafka would land afterwards, so
the worker reads the tombstones before each insert and drops what they cover. An erasure
that lands between that read and the insert is caught by a second read after the insert:
either the worker sees its tombstone then and deletes what it just stored, or the erasure's
own DELETE ran after the insert and removed it. Events received after an erasure are new
data and are kept.
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

    def refresh(self) -> dict[tuple[str, str], int]:
        """Read the tombstones written since the last refresh; returns the new ones."""
        new = {}
        for project, id_, erased_at in tombstones_since(self._store, self._since - OVERLAP_MS):
            key = (project, id_)
            if self._erased.get(key, -1) < erased_at:
                self._erased[key] = new[key] = erased_at
            self._since = max(self._since, erased_at)
        return new

    def _erased_at(self, event: Event, erased: dict[tuple[str, str], int]) -> int | None:
        for id_ in (event.user_id, event.anonymous_id):
            at = erased.get((event.project_id, id_)) if id_ else None
            if at is not None and event.received_at <= at:
                return at
        return None

    def screen(self, events: Sequence[Event]) -> tuple[list[Event], bool]:
        """`events` without those of erased ids received before their erasure (new tombstones
        are read first), and whether there were new tombstones."""
        new = self.refresh()
        if not self._erased:
            return list(events), bool(new)
        return [e for e in events if self._erased_at(e, self._erased) is None], bool(new)

    def after_insert(self, events: Sequence[Event]) -> bool:
        """Delete what an erasure that raced this insert covers; True if there were new tombstones."""
        new = self.refresh()
        if not new:
            return False
        hit: dict[tuple[str, int], set[str]] = {}
        for event in events:
            at = self._erased_at(event, new)
            if at is not None:
                hit.setdefault((event.project_id, at), set()).update(i for i in (event.user_id, event.anonymous_id) if i)
        for (project, at), ids in hit.items():
            delete_erased(self._store, project, sorted(ids), at)
        return True
