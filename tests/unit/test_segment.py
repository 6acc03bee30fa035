"""The pure parts of the Segment API: clock-skew correction, write key, decompression, identity records."""

from __future__ import annotations

import base64
import gzip
import zlib

import pytest

from streamtrack.events import Event
from streamtrack.identities import AliasRecord, TraitsRecord, identity_records, merge_traits
from streamtrack.normalize import Limits, RequestContext
from streamtrack.segment import (
    MissingWriteKey,
    SegmentError,
    decompress,
    event_time,
    parse_sent_at,
    to_event,
    write_key,
)
from streamtrack.timestamps import parse_time

RECEIVED = parse_time("2026-03-01T12:00:00Z")


def test_event_time_follows_segments_formula() -> None:
    # timestamp = receivedAt - (sentAt - originalTimestamp)
    message = {"timestamp": "2026-03-01T09:59:50Z", "sentAt": "2026-03-01T10:00:00Z"}
    assert event_time(message, RECEIVED) == RECEIVED - 10_000
    batch_sent = parse_sent_at("2026-03-01T10:00:05Z")
    assert event_time({"timestamp": "2026-03-01T09:59:50Z"}, RECEIVED, batch_sent) == RECEIVED - 15_000
    assert event_time(message, RECEIVED, batch_sent) == RECEIVED - 10_000  # the message's own sentAt wins
    assert event_time({"timestamp": "2026-03-01T09:59:50Z"}, RECEIVED) == parse_time("2026-03-01T09:59:50Z")
    assert event_time({"originalTimestamp": 1772359190}, RECEIVED) == 1772359190_000
    assert event_time({}, RECEIVED, batch_sent) == RECEIVED
    assert parse_sent_at(None) is None


def test_write_key_from_basic_auth_or_body() -> None:
    basic = "Basic " + base64.b64encode(b"wk-1:").decode()
    assert write_key(basic, "wk-2") == "wk-1"
    assert write_key(None, "wk-2") == "wk-2"
    assert write_key("Bearer token", None) is None
    assert write_key(None, "") is None
    with pytest.raises(MissingWriteKey):
        write_key("Basic not-base64!", None)


def test_decompress_limits_what_it_inflates() -> None:
    data = b'{"batch": []}'
    assert decompress(gzip.compress(data), "gzip", 100) == data
    assert decompress(zlib.compress(data), "deflate", 100) == data
    assert decompress(data, "", 100) == data
    with pytest.raises(SegmentError, match="over 100 bytes"):
        decompress(gzip.compress(b" " * 1000), "gzip", 100)
    with pytest.raises(SegmentError, match="truncated"):
        decompress(gzip.compress(data)[:-8], "gzip", 100)


def test_to_event_keeps_context_and_drops_what_must_not_be_stored() -> None:
    message = {
        "type": "track",
        "event": "E",
        "userId": "u",
        "messageId": "m",
        "writeKey": "secret",
        "integrations": {"All": False},
        "_metadata": {"bundled": []},
        "context": {"library": {"name": "x"}},
    }
    event = to_event(message, None, RequestContext(received_at=RECEIVED, ip="198.51.100.1"), Limits())
    assert (event.event_id, event.event_type, event.user_id, event.ip) == ("m", "E", "u", "198.51.100.1")
    assert event.properties == {"$context": {"library": {"name": "x"}}}
    with pytest.raises(SegmentError) as refused:
        to_event({"event": "E", "userId": "u"}, None, RequestContext(received_at=RECEIVED), Limits())
    assert refused.value.field == "type"


def _event(event_type: str, **fields: object) -> Event:
    return Event(
        event_id=f"id-{event_type}",
        event_type=event_type,
        timestamp=1,
        received_at=1,
        project_id="p1",
        **fields,
    )  # type: ignore[arg-type]


def test_identity_records_of_each_call() -> None:
    traits, aliases = identity_records(
        [
            _event("$identify", user_id="u", anonymous_id="a", properties={"traits": {"plan": "pro"}}),
            _event("$group", user_id="u", properties={"group_id": "g", "traits": {"name": "Acme"}}),
            _event("$alias", user_id="u", properties={"previous_id": "old"}),
            _event("$alias", user_id="u", properties={}),  # sent to /track without previous_id: links nothing
            _event("page_view", user_id="u"),
        ]
    )
    assert traits == [
        TraitsRecord("p1", "user", "u", "id-$identify", 1, {"plan": "pro"}),
        TraitsRecord("p1", "group", "g", "id-$group", 1, {"name": "Acme"}, member="u"),
    ]
    assert aliases == [
        AliasRecord("p1", "a", "u", "id-$identify", 1),
        AliasRecord("p1", "old", "u", "id-$alias", 1),
    ]


def test_traits_merge_trait_by_trait_latest_wins() -> None:
    assert merge_traits([{"email": "a", "plan": "free"}, {"plan": "pro"}, {}]) == {
        "email": "a",
        "plan": "pro",
    }
