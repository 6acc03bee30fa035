"""The canonical event: the one shape that travels through Kafka and lands in ClickHouse.

Clients send many shapes (see `streamtrack.normalize`); the API turns each into this
struct before producing it, and the worker decodes exactly this struct from the topic.
Times are integer epoch milliseconds in UTC: exact, cheap to encode, and what
ClickHouse's DateTime64(3) stores.
"""

from __future__ import annotations

from typing import Any

import msgspec

DEFAULT_PROJECT = "default"
"""The project of events from before projects existed, and of every request while auth is off."""


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    event_id: str
    event_type: str
    timestamp: int
    """When the event happened, epoch milliseconds UTC (the client's time, or receipt time)."""
    received_at: int
    """When the API accepted it, epoch milliseconds UTC."""
    user_id: str = ""
    anonymous_id: str = ""
    session_id: str = ""
    url: str = ""
    referrer: str = ""
    channel: str = ""
    campaign_id: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    ip: str = ""
    user_agent: str = ""
    project_id: str = DEFAULT_PROJECT
    """The project of the key that sent it, stamped by the API (never read from the body)."""
    is_bot: bool = False
    """Set by the worker's bot filter (streamtrack.auth.bots)."""
    generated_id: bool = False
    """The API made `event_id` (the client gave none): its only copies are replays of this
    record, which carry the same timestamp (`worker.dedup`). Travels in Kafka, not stored."""

    @property
    def partition_key(self) -> str:
        """Kafka key: one user's events stay in one partition, in order."""
        return self.user_id or self.anonymous_id


encode_event = msgspec.json.Encoder().encode
decode_event = msgspec.json.Decoder(Event).decode
