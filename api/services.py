"""What the API needs at run time, opened once and handed to `create_app`.

The caller owns it: the CLI opens it for `streamtrack api`, the dev mode shares its store
with the in-process worker, and tests build it around the local broker and a throwaway
database.
"""

from __future__ import annotations

import dataclasses
import functools

from streamtrack.api.live_feed import LiveFeed, StreamSlots
from streamtrack.api.read_limits import bounded_store
from streamtrack.config import Settings
from streamtrack.kafka import EventProducer, ensure_topics
from streamtrack.normalize import Limits
from streamtrack.store import EventStore, open_store
from streamtrack.store.keys import migrate_keys
from streamtrack.store.privacy import apply_retention


@dataclasses.dataclass
class Services:
    settings: Settings
    producer: EventProducer
    store: EventStore
    limits: Limits

    @classmethod
    def open(cls, settings: Settings, store: EventStore | None = None) -> Services:
        """Create missing topics, migrate the schema, connect the producer."""
        ensure_topics(settings)
        if store is None:
            store = open_store(settings)
        store.migrate()
        migrate_keys(store)
        apply_retention(store, settings.retention_days)
        return cls(
            settings=settings,
            producer=EventProducer(settings),
            store=store,
            limits=Limits(max_event_bytes=settings.max_event_bytes),
        )

    @functools.cached_property
    def reads(self) -> EventStore:
        """The store as API reads see it: every query bounded in ClickHouse (`streamtrack.api.read_limits`)."""
        return bounded_store(self.store, self.settings)

    @functools.cached_property
    def live(self) -> LiveFeed:
        """The feed of `GET /activities/stream`: its Kafka consumer starts with the first stream."""
        return LiveFeed(self.settings)

    @functools.cached_property
    def live_slots(self) -> StreamSlots:
        return StreamSlots(self.settings.live_streams_per_key)

    def close(self) -> None:
        if "live" in self.__dict__:  # started only if a stream was opened
            self.live.close()
        self.producer.close()
