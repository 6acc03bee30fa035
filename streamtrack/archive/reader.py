"""Reading the archive back: which objects hold a project's events of a time range, and their events.

Selection is by name first (the project and hour folders, see `layout`), then exact on each
event's `received_at`, so a range that cuts an hour in two reads that hour's objects and
keeps only what falls inside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from streamtrack.archive import layout
from streamtrack.archive.objects import ObjectStore
from streamtrack.events import Event

HOUR_MS = 3_600_000


@dataclasses.dataclass(frozen=True)
class Selection:
    project: str | None = None
    since_ms: int | None = None
    """Received at or after (inclusive)."""
    until_ms: int | None = None
    """Received before (exclusive)."""

    def holds(self, event: Event) -> bool:
        return (
            (self.project is None or event.project_id == self.project)
            and (self.since_ms is None or event.received_at >= self.since_ms)
            and (self.until_ms is None or event.received_at < self.until_ms)
        )

    def may_hold(self, key: layout.ObjectKey) -> bool:
        start = key.hour_start_ms
        return (
            (self.project is None or key.project == self.project)
            and (self.since_ms is None or start + HOUR_MS > self.since_ms)
            and (self.until_ms is None or start < self.until_ms)
        )


@dataclasses.dataclass(frozen=True)
class ArchivedObject:
    name: str
    size: int
    key: layout.ObjectKey


def select_objects(objects: ObjectStore, prefix: str, selection: Selection) -> list[ArchivedObject]:
    """The archive's objects that may hold events of the selection, oldest hour first."""
    listed = f"{prefix}/project={selection.project}/" if selection.project else f"{prefix}/project="
    found = []
    for name, size in objects.list(listed):
        key = layout.parse_object_name(prefix, name)
        if key is not None and selection.may_hold(key):
            found.append(ArchivedObject(name, size, key))
    found.sort(key=lambda o: (o.key.date, o.key.hour, o.key.topic, o.key.partition, o.key.first))
    return found


def read_events(objects: ObjectStore, item: ArchivedObject, selection: Selection) -> list[Event]:
    return [event for event in layout.decode_objects(objects.get(item.name)) if selection.holds(event)]


def iter_events(objects: ObjectStore, prefix: str, selection: Selection) -> Iterator[Event]:
    for item in select_objects(objects, prefix, selection):
        yield from read_events(objects, item, selection)
