"""Erasure against events in flight: the worker drops events of erased ids received before the erasure.

`streamtrack.store.privacy.erase_user` writes a tombstone per erased id, then deletes the
stored events. An event accepted before that and still in Kafka would land afterwards, so
the worker reads the tombstones before each insert and drops what they cover. An erasure
that lands between that read and the insert is caught by a second read after the insert.
Whenever the worker reads new tombstones it deletes what they cover itself (so neither a
raced insert nor an erasure whose DELETE has not run yet leaves rows behind), and only then
starts its id cache again from ClickHouse. Events received after an erasure are new data.
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
        """When the event's sender was erased, if after the event was received (the rule of
        `privacy.erase_user`: its user id, or its anonymous id when sent anonymously)."""
        at = erased.get((event.project_id, event.user_id or event.anonymous_id))
        return at if at is not None and event.received_at <= at else None

    def screen(self, events: Sequence[Event]) -> tuple[list[Event], bool]:
        """`events` without those of erased ids received before their erasure, and whether new
        tombstones were read first. New tombstones are applied to what is stored too
        (`apply`), before the caller re-warms its id cache."""
        new = self.refresh()
        if new:
            self.apply(new)
        if not self._erased:
            return list(events), bool(new)
        return [e for e in events if self._erased_at(e, self._erased) is None], bool(new)

    def after_insert(self) -> bool:
        """Apply the tombstones written while the batch was being inserted; True if there were any."""
        new = self.refresh()
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
