"""The event shapes we accept and every way an event is refused."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamtrack.errors import InvalidEvent, MalformedBody, PayloadTooLarge
from streamtrack.events import decode_event, encode_event
from streamtrack.normalize import Limits, RequestContext, normalize, normalize_raw, split_batch

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z
CTX = RequestContext(received_at=NOW, ip="127.0.0.1", user_agent="pytest")
LIMITS = Limits()


def norm(data):
    return normalize(data, CTX, LIMITS)


def refusal(data) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        norm(data)
    return info.value


def test_minimal_event_gets_id_time_and_context():
    event = norm({"event_type": "page_view", "user_id": "u1"})
    assert event.event_type == "page_view"
    assert event.user_id == "u1"
    assert len(event.event_id) == 32
    assert event.timestamp == NOW and event.received_at == NOW
    assert (event.ip, event.user_agent) == ("127.0.0.1", "pytest")
    assert event.properties == {} and event.tags == []


@pytest.mark.parametrize("name", ["event_type", "event_name", "event", "action"])
def test_event_name_aliases(name):
    assert norm({name: "signup", "user_id": "u"}).event_type == "signup"


def test_common_tracker_shapes():
    event = norm(
        {
            "event": "click", "userId": 42, "anonymousId": "a-1", "sessionId": "s-9",
            "page_url": "https://x.test/a", "referer": "https://ref.test", "messageId": "m-1",
            "metadata": {"button": "buy"}, "campaignId": "c-1", "channel": "web", "tags": ["a", "b"],
        }
    )
    assert (event.event_type, event.user_id, event.anonymous_id, event.session_id) == ("click", "42", "a-1", "s-9")
    assert (event.url, event.referrer, event.event_id) == ("https://x.test/a", "https://ref.test", "m-1")
    assert event.properties == {"button": "buy"}
    assert (event.campaign_id, event.channel, event.tags) == ("c-1", "web", ["a", "b"])


def test_unknown_fields_are_kept_in_properties_and_explicit_properties_win():
    event = norm({"event_type": "x", "user_id": "u", "plan": "pro", "price": 9.5, "properties": {"plan": "free"}})
    assert event.properties == {"plan": "free", "price": 9.5}


def test_metadata_and_properties_merge():
    event = norm({"event_type": "x", "user_id": "u", "metadata": {"a": 1, "b": 1}, "properties": {"b": 2}})
    assert event.properties == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-24T15:00:00Z", NOW - 3_600_000),
        ("2025-11-24T17:00:00+01:00", NOW),
        ("2025-11-24T16:00:00", NOW),
        (1_764_000_000, NOW),
        (1_764_000_000.5, NOW + 500),
        (NOW, NOW),
        ("1764000000", NOW),
        (None, NOW),
    ],
)
def test_timestamp_forms(value, expected):
    assert norm({"event_type": "x", "user_id": "u", "timestamp": value}).timestamp == expected


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"user_id": "u"}, "event_type", "missing"),
        ({"event_type": "", "user_id": "u"}, "event_type", "empty"),
        ({"event_type": "   ", "user_id": "u"}, "event_type", "empty"),
        ({"event_type": 5, "user_id": "u"}, "event_type", "expected a string"),
        ({"event_type": ["a"], "user_id": "u"}, "event_type", "got an array"),
        ({"event_type": "x"}, "user_id", "user_id' or 'anonymous_id"),
        ({"event_type": "x", "user_id": True}, "user_id", "got a boolean"),
        ({"event_type": "x", "user_id": 1.5}, "user_id", "got a number"),
        ({"event_type": "x", "user_id": {"id": 1}}, "user_id", "got an object"),
        ({"event_type": "x" * 201, "user_id": "u"}, "event_type", "201 characters"),
        ({"event_type": "x", "user_id": "u" * 201}, "user_id", "at most 200"),
        ({"event_type": "x", "user_id": "u", "url": "h" * 8193}, "url", "at most 8192"),
        ({"event_type": "x", "user_id": "u", "timestamp": "yesterday"}, "timestamp", "RFC 3339"),
        ({"event_type": "x", "user_id": "u", "timestamp": -5}, "timestamp", "negative"),
        ({"event_type": "x", "user_id": "u", "timestamp": True}, "timestamp", "boolean"),
        ({"event_type": "x", "user_id": "u", "timestamp": "1999-12-31T23:59:59Z"}, "timestamp", "before 2000"),
        ({"event_type": "x", "user_id": "u", "timestamp": NOW + 25 * 3_600_000}, "timestamp", "future"),
        ({"event_type": "x", "user_id": "u", "timestamp": 10**30}, "timestamp", "future"),
        ({"event_type": "x", "user_id": "u", "timestamp": {"at": 1}}, "timestamp", "got dict"),
        ({"event_type": "x", "user_id": "u", "properties": [1]}, "properties", "JSON object"),
        ({"event_type": "x", "user_id": "u", "metadata": "a"}, "metadata", "JSON object"),
        ({"event_type": "x", "user_id": "u", "tags": "a"}, "tags", "array of strings"),
        ({"event_type": "x", "user_id": "u", "tags": [1]}, "tags[0]", "expected a string"),
        ({"event_type": "x", "user_id": "u", "tags": ["t"] * 51}, "tags", "51 tags"),
        ({"event_type": "x", "event": "y", "user_id": "u"}, "event", "two names"),
        ({"event_type": "x", "user_id": "u", "event_id": ""}, "event_id", "empty"),
    ],
)
def test_refusals_name_the_field_and_the_problem(data, field, words):
    error = refusal(data)
    assert error.field == field
    assert words in error.message
    assert error.status == 422


def test_non_object_events_are_refused():
    for data in ([], "x", 1, None, True):
        assert "an event is a JSON object" in refusal(data).message


def test_property_depth_count_and_key_limits():
    deep: dict = {}
    node = deep
    for _ in range(LIMITS.max_property_depth):
        node["k"] = {}
        node = node["k"]
    error = refusal({"event_type": "x", "user_id": "u", "properties": deep})
    assert "deeper than 8" in error.message and error.field.startswith("properties.k")
    ok = {"k": {"k": {"k": 1}}}
    assert norm({"event_type": "x", "user_id": "u", "properties": ok}).properties == ok
    many = {f"k{i}": i for i in range(LIMITS.max_properties + 1)}
    assert "more than 1000" in refusal({"event_type": "x", "user_id": "u", "properties": many}).message
    long_key = {"k" * 257: 1}
    assert "key of 257" in refusal({"event_type": "x", "user_id": "u", "properties": long_key}).message


def test_raw_size_limit_and_bad_json():
    with pytest.raises(PayloadTooLarge) as info:
        normalize_raw(b'{"event_type":"x","user_id":"u","p":"' + b"a" * 70_000 + b'"}', CTX, LIMITS)
    assert "at most 65536" in info.value.message and info.value.status == 413
    for body in (b"{", b"not json", b'{"a":1}}', b"\xff\xfe", b'"\\ud800"'):
        with pytest.raises(MalformedBody) as bad:
            normalize_raw(body, CTX, LIMITS)
        assert bad.value.status == 400 and "not valid JSON" in bad.value.message
    with pytest.raises(MalformedBody, match="nested too deeply"):
        normalize_raw(b"[" * 30_000 + b"]" * 30_000, CTX, LIMITS)


def test_batch_shapes_and_limits():
    assert len(split_batch(b'[{"a":1},{"b":2}]', max_events=10)) == 2
    assert len(split_batch(b'{"events":[{"a":1}],"sentAt":"x"}', max_events=10)) == 1
    assert len(split_batch(b'{"batch":[{"a":1}]}', max_events=10)) == 1
    with pytest.raises(InvalidEvent, match="no events"):
        split_batch(b"[]", max_events=10)
    with pytest.raises(InvalidEvent, match="'events' array"):
        split_batch(b'{"items":[]}', max_events=10)
    with pytest.raises(InvalidEvent, match="JSON array of events"):
        split_batch(b'"x"', max_events=10)
    with pytest.raises(PayloadTooLarge, match="11 events"):
        split_batch(b"[" + b",".join([b"{}"] * 11) + b"]", max_events=10)
    with pytest.raises(MalformedBody):
        split_batch(b"[{]", max_events=10)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_any_json_object_is_either_an_event_or_a_clear_refusal(data):
    try:
        event = norm(data)
    except InvalidEvent as exc:
        assert exc.message and exc.status == 422
        return
    assert decode_event(encode_event(event)) == event  # what goes to Kafka comes back the same


@given(st.binary(max_size=200))
def test_any_bytes_never_crash_the_decoder(body):
    try:
        normalize_raw(body, CTX, LIMITS)
    except (InvalidEvent, MalformedBody, PayloadTooLarge):
        pass
    else:
        msgspec.json.decode(body)  # it really was a valid event
