"""Event storage in ClickHouse: embedded (chdb, in-process) or a server, behind one EventStore.

Use `open_store(settings)`; everything else in this package is internal.
"""

from streamtrack.store.store import EventStore, StoreStats, open_store

__all__ = ["EventStore", "StoreStats", "open_store"]
