"""The struct path of `normalize_raw` (events of known names, decoded into `_Known`) against `normalize`.

`normalize` is the reference: for every body the struct path either gives the very event
`normalize` gives (the generated id aside) or declines, and then `normalize` answers, so
every refusal keeps its message. Hypothesis builds bodies from the accepted names, wrong
types, limits' edges, aliases given twice, other keys and nesting.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamtrack.errors import ClientError
from streamtrack.event_ids import new_event_id
from streamtrack.normalize import ALIASES, Limits, RequestContext, _normalize_known, normalize, normalize_raw

NOW = 1_764_000_000_000
CTX = RequestContext(received_at=NOW, ip="10.0.0.1", user_agent="pytest", project_id="p1")
LIMITS = Limits(max_id_chars=8, max_name_chars=8, max_url_chars=12, max_tags=3, max_tag_chars=4, max_property_depth=2,
                max_properties=4, max_property_key_chars=5)
"""Small limits, so generated values cross them often."""

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**10), 10**10), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=14), st.sampled_from(["", " ", "  x ", "click"]),
)
times = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**13), st.floats(0, 2e12, allow_nan=False),
    st.sampled_from(["2025-11-24T10:00:00Z", "2025-11-24 10:00", "1764000000", "1764000000.5", "soon", "", "-1"]),
)
properties = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=7), inner, max_size=4),
    max_leaves=8,
)
ids = st.one_of(st.sampled_from(["u1", "abc", 42, -7, 10**9, ""]), st.text(max_size=9), scalars)
texts = st.one_of(st.sampled_from(["web", "https://a.b", ""]), st.text(max_size=13), scalars)
ANY: dict[str, st.SearchStrategy[Any]] = {
    "event_type": st.one_of(st.sampled_from(["click", " view ", "x" * 9, "  "]), scalars),
    "event_id": ids, "user_id": ids, "anonymous_id": ids, "session_id": ids,
    "url": texts, "referrer": texts, "channel": texts, "campaign_id": texts,
    "timestamp": times,
    "tags": st.one_of(st.lists(st.text(max_size=5), max_size=4), properties),
    "properties": st.one_of(st.dictionaries(st.text(max_size=6), properties, max_size=5), properties),
}
valid_ids = st.one_of(st.sampled_from(["u1", 42, -7, 10**7]), st.text(min_size=1, max_size=8))
valid_texts = st.one_of(st.none(), st.text(max_size=8))
flat = st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=4)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "event_type": st.sampled_from(["click", " view"]),
    "event_id": valid_ids, "user_id": valid_ids, "anonymous_id": valid_ids, "session_id": valid_ids,
    "url": valid_texts, "referrer": valid_texts, "channel": valid_texts, "campaign_id": valid_texts,
    "timestamp": st.one_of(st.none(), st.integers(946_684_800_000, NOW), st.just("2025-11-24T10:00:00Z")),
    "tags": st.one_of(st.none(), st.lists(st.text(max_size=4), max_size=3)),
    "properties": st.one_of(st.none(), flat, st.dictionaries(st.text(max_size=5), flat | st.lists(st.integers()),
                                                             max_size=2)),
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid events (so both paths accept often), with every kind of fault mixed in."""
    body: dict[str, Any] = {}
    for field in ANY:
        wanted = 0.95 if field in ("event_type", "user_id") else 0.3
        if draw(st.floats(0, 1)) < wanted:
            values = VALID[field] if draw(st.floats(0, 1)) < 0.9 else ANY[field]
            value = body[draw(st.sampled_from(ALIASES[field]))] = draw(values)
            if draw(st.floats(0, 1)) < 0.05:  # a second name for it: the same value is allowed, another is not
                body[draw(st.sampled_from(ALIASES[field]))] = value if draw(st.booleans()) else draw(values)
    if draw(st.floats(0, 1)) < 0.1:
        body[draw(st.text(min_size=1, max_size=6))] = draw(scalars)  # another key: the reference's path
    return body


def without_id(event: Any) -> Any:
    return msgspec.structs.replace(event, event_id="")


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(bodies())
def test_the_struct_path_gives_normalize_s_event_or_declines(body: dict[str, Any]) -> None:
    raw = msgspec.json.encode(body)
    fast = _normalize_known(raw, CTX, LIMITS)
    try:
        reference = normalize(msgspec.json.decode(raw), CTX, LIMITS)
    except ClientError as refusal:
        assert fast is None, f"the struct path accepted what normalize refuses: {refusal.message}"
        with pytest.raises(type(refusal)) as again:
            normalize_raw(raw, CTX, LIMITS)
        assert (again.value.code, again.value.message, again.value.field) == (refusal.code, refusal.message, refusal.field)
        return
    event = normalize_raw(raw, CTX, LIMITS)
    assert without_id(event) == without_id(reference)
    assert msgspec.json.encode(without_id(event)) == msgspec.json.encode(without_id(reference))  # key order too
    if fast is not None:
        assert without_id(fast) == without_id(reference)


def test_plain_events_take_the_struct_path() -> None:
    raw = b'{"event_type":"click","user_id":7,"session_id":"s","url":"https://a.b","properties":{"plan":"pro"}}'
    event = _normalize_known(raw, CTX, Limits())
    assert event is not None
    assert (event.user_id, event.properties, event.generated_id, event.project_id) == ("7", {"plan": "pro"}, True, "p1")
    given_id = _normalize_known(b'{"action":"a","userId":"u","messageId":"m-1"}', CTX, Limits())
    assert given_id is not None and (given_id.event_id, given_id.generated_id, given_id.user_id) == ("m-1", False, "u")


def test_generated_ids_are_uuid7_of_the_receipt_time() -> None:
    event = normalize_raw(b'{"event_type":"click","user_id":"u"}', CTX, Limits())
    parsed = uuid.UUID(event.event_id)
    assert (parsed.version, parsed.variant, len(event.event_id)) == (7, uuid.RFC_4122, 32)
    assert int(event.event_id[:12], 16) == NOW
    assert event.generated_id


def test_generated_ids_differ_and_sort_by_time() -> None:
    ids = [new_event_id(NOW + n // 100) for n in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=lambda i: i[:12])
