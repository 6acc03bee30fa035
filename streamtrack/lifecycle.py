"""The data-lifecycle loops that run beside a worker on threads: the dead-letter loader
(STREAMTRACK_DLQ_TABLE) and, in `streamtrack dev` only, the archive writer (STREAMTRACK_ARCHIVE).

In a deployment the archive writer is its own process (`streamtrack archive`, the chart's
archive Deployment), so an object store outage never shares a process with the ClickHouse load.
"""

from __future__ import annotations

import threading
from typing import Protocol

from streamtrack.config import Settings
from streamtrack.store import EventStore


class Loop(Protocol):
    def run(self) -> object: ...
    def stop(self) -> None: ...


class Background:
    """Loops started on daemon threads; `stop()` asks each to finish and waits for it."""

    def __init__(self) -> None:
        self._running: list[tuple[Loop, threading.Thread]] = []

    def start(self, loop: Loop, name: str) -> None:
        thread = threading.Thread(target=loop.run, name=name, daemon=True)
        thread.start()
        self._running.append((loop, thread))

    def stop(self, timeout: float = 30.0) -> None:
        for loop, _ in self._running:
            loop.stop()
        for _, thread in self._running:
            thread.join(timeout)
        self._running.clear()


def start_background(settings: Settings, store: EventStore, *, archive: bool = False) -> Background:
    """The dead-letter loader (if on) and, with `archive` and STREAMTRACK_ARCHIVE on, the archive writer."""
    background = Background()
    if settings.dlq_table:
        from streamtrack.deadletters import DeadLetterLoader

        background.start(DeadLetterLoader(settings, store), "dlq-loader")
    if archive and settings.archive:
        from streamtrack.archive import ArchiveWriter

        background.start(ArchiveWriter(settings), "archive-writer")
    return background
