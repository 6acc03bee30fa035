"""Each event stored once: the worker decides "new or copy" by (project, event id) before the insert.

Where copies come from, and what catches each (one user's events share a partition, so one
worker sees an event's copies in order):
- a record replayed after a crash or a rebalance: the same record, so the same timestamp;
- a client retry of an event with its own id: the same timestamp if the client sent one,
  a new server timestamp if it did not (seconds or days apart);
- an insert retried after an unknown outcome: dropped by ClickHouse (its dedup token).

`RecentIds` remembers every event stored with a timestamp at or after its `horizon`: warmed
from ClickHouse when partitions are assigned (the previous owner's inserts are visible by
then: it gave the partitions up only after its last commit), then fed by each insert. So for
an event whose copies all share its timestamp (a generated id, or a client timestamp), at or
after the horizon, the cache decides alone. Any other event (a client id with a server
timestamp, or a time before the horizon) is looked up in ClickHouse: by the sorting key on
its day when its copies share the timestamp, through the `by_id` projection otherwise.
The cache's size bounds memory, never correctness: a smaller one only moves the horizon up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from streamtrack.events import Event
from streamtrack.store import EventStore

MINUTE_MS = 60_000


class RecentIds:
    """The ids of the events stored with a timestamp at or after `horizon`, by project
    (project -> event id -> minute of its time: no key string is built per event)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.horizon = 2**62  # nothing is known before the first warm-up
        self._minute_of: dict[str, dict[str, int]] = {}
        self._size = 0

    def ids(self, project_id: str) -> dict[str, int]:
        """A project's remembered ids (event id -> minute), read-only; empty if none."""
        return self._minute_of.get(project_id, _NONE)

    def __len__(self) -> int:
        return self._size

    def reset(self, horizon: int, stored: Iterable[tuple[str, str, int]]) -> None:
        """Forget everything; then remember `stored` (project, id, timestamp ms), all at or after `horizon`."""
        self._minute_of, self.horizon = {}, horizon
        for project, event_id, ms in stored:
            if ms >= horizon:
                self._minute_of.setdefault(project, {})[event_id] = ms // MINUTE_MS
        self._count_and_trim()

    def add(self, events: Iterable[Event]) -> None:
        """Remember events just stored; those before the horizon need no memory."""
        horizon, by_project, project, ids = self.horizon, self._minute_of, None, _NONE
        for event in events:
            if event.timestamp < horizon:
                continue
            if event.project_id != project:  # batches are mostly one project: one lookup per run
                project = event.project_id
                ids = by_project.setdefault(project, {})
            ids[event.event_id] = event.timestamp // MINUTE_MS
        self._count_and_trim()

    def _count_and_trim(self) -> None:
        self._size = sum(len(ids) for ids in self._minute_of.values())
        if self._size > self.capacity:
            self._evict()

    def _evict(self) -> None:
        """Drop the oldest minutes down to 90 % of capacity (amortized: one pass per eviction);
        the horizon moves past them."""
        per_minute: dict[int, int] = {}
        for ids in self._minute_of.values():
            for minute in ids.values():
                per_minute[minute] = per_minute.get(minute, 0) + 1
        keep, total = 0.9 * self.capacity, self._size
        cut = None
        for minute in sorted(per_minute):
            if total <= keep:
                break
            total -= per_minute[minute]
            cut = minute
        if cut is None:
            return
        self._minute_of = {
            project: kept
            for project, ids in self._minute_of.items()
            if (kept := {event_id: minute for event_id, minute in ids.items() if minute > cut})
        }
        self._size = total
        self.horizon = max(self.horizon, (cut + 1) * MINUTE_MS)


_NONE: dict[str, int] = {}


def warm(cache: RecentIds, store: EventStore, *, now_ms: int, window_ms: int) -> None:
    """Fill `cache` with what ClickHouse stores from `now_ms - window_ms` on (fewer minutes if
    that is more than the cache holds)."""
    since = now_ms - window_ms
    counts = store.recent_minute_counts(since)
    total = 0
    for minute, count in sorted(counts, reverse=True):
        if total + count > cache.capacity:
            since = (minute + 1) * MINUTE_MS
            break
        total += count
    cache.reset(since, store.recent_ids(since, cache.capacity))


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def new_events(
    events: Sequence[Event], cache: RecentIds, store: EventStore, *, trust_cache: bool = True
) -> tuple[list[Event], int]:
    """`events` without copies (first copy wins), and how many ClickHouse lookups it took.

    `trust_cache` False (a batch holding records of `streamtrack replay`): every event is
    looked up in ClickHouse, since a replay follows data lost or deleted there, which the
    cache would still remember as stored.
    """
    seen: set[tuple[str, str]] = set()
    fresh: list[Event] = []
    by_day: dict[tuple[str, str], list[Event]] = {}
    by_id: dict[str, list[Event]] = {}
    project, known = None, _NONE
    for event in events:
        if event.project_id != project:  # batches are mostly one project: one dict lookup per run
            project = event.project_id
            known = cache.ids(project) if trust_cache else _NONE
        if event.event_id in known:
            continue
        key = (project, event.event_id)
        if key in seen:
            continue
        seen.add(key)
        same_time = event.generated_id or event.timestamp != event.received_at
        if same_time and event.timestamp >= cache.horizon and trust_cache:
            fresh.append(event)
        elif same_time:
            by_day.setdefault((event.project_id, _day(event.timestamp)), []).append(event)
        else:
            by_id.setdefault(event.project_id, []).append(event)
    lookups = 0
    for (project, day), group in by_day.items():
        stored = store.stored_ids(project, [e.event_id for e in group], [day])
        fresh.extend(e for e in group if e.event_id not in stored)
        lookups += 1
    for project, group in by_id.items():
        stored = store.stored_ids(project, [e.event_id for e in group])
        fresh.extend(e for e in group if e.event_id not in stored)
        lookups += 1
    if lookups:
        order = {id(e): i for i, e in enumerate(events)}
        fresh.sort(key=lambda e: order[id(e)])
    return fresh, lookups
