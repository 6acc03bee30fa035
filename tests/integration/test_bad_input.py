"""Every kind of bad input gets a clear 4xx in one JSON shape, and nothing else breaks."""

from __future__ import annotations

import base64
import json
import os

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.pipeline import Pipeline

GOOD = {"event_type": "page_view", "user_id": "u-1"}
JSON = {"Content-Type": "application/json"}


def check_error(response, status: int, code: str | None = None, field: str | None = None, words: str = "") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["message"]
    if code:
        assert body["code"] == code
    if field:
        assert body.get("field") == field, body
    assert words in body["message"], body
    return body


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field", "words"),
    [
        (b"not json", JSON, 400, "malformed_json", None, "not valid JSON"),
        (b"{", JSON, 400, "malformed_json", None, "not valid JSON"),
        (b"", JSON, 400, "empty_body", None, "empty"),
        (b"   ", JSON, 400, "empty_body", None, "empty"),
        (b"\xff\xfe\x00", JSON, 400, "malformed_json", None, ""),
        (b"[" * 5000 + b"]" * 5000, JSON, 400, "malformed_json", None, "nested too deeply"),
        (json.dumps(GOOD).encode(), {"Content-Type": "application/xml"}, 415, "unsupported_media_type", "Content-Type", "application/json"),
        (b"event_type=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415, None, None, ""),
        (b"[]", JSON, 422, "invalid_event", None, "JSON object"),
        (b"null", JSON, 422, "invalid_event", None, "got null"),
        (b'{"user_id":"u"}', JSON, 422, "invalid_event", "event_type", "missing"),
        (b'{"event_type":"x"}', JSON, 422, "invalid_event", "user_id", "anonymous_id"),
        (b'{"event_type":42,"user_id":"u"}', JSON, 422, "invalid_event", "event_type", "expected a string"),
        (b'{"event_type":"x","user_id":"u","timestamp":"soon"}', JSON, 422, "invalid_event", "timestamp", "RFC 3339"),
        (b'{"event_type":"x","user_id":"u","timestamp":99999999999999999}', JSON, 422, None, "timestamp", "future"),
        (b'{"event_type":"x","user_id":"u","timestamp":1e400}', JSON, 400, "malformed_json", None, ""),
        (b'{"event_type":"x","user_id":"u","properties":"p"}', JSON, 422, None, "properties", "JSON object"),
        (b'{"event_type":"x","user_id":"u","properties":' + b'{"a":' * 20 + b"1" + b"}" * 21, JSON, 422, None, None, "deeper"),
    ],
)
def test_track_refuses_bad_bodies(pipeline: Pipeline, body, headers, status, code, field, words) -> None:
    with pipeline.client() as client:
        check_error(client.post("/track", content=body, headers=headers), status, code, field, words)


def test_oversized_bodies_get_413(pipeline: Pipeline) -> None:
    limit = pipeline.settings.max_event_bytes
    big_event = json.dumps({**GOOD, "blob": "x" * limit}).encode()
    with pipeline.client() as client:
        check_error(client.post("/track", content=big_event, headers=JSON), 413, "payload_too_large", None, str(limit))
        too_many = pipeline.settings.max_batch_events + 1
        check_error(client.post("/batch", json=[GOOD] * too_many), 413, None, "events", str(too_many))
        huge = b'[{"event_type":"x","user_id":"u","b":"' + b"y" * (pipeline.settings.max_batch_bytes + 10) + b'"}]'
        check_error(client.post("/batch", content=huge, headers=JSON), 413)


def test_sendbeacon_text_plain_is_accepted(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        response = client.post("/track", content=json.dumps(GOOD), headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert response.status_code == 202


def test_batch_reports_each_item_and_keeps_the_good_ones(pipeline: Pipeline) -> None:
    items = [GOOD, {"user_id": "u"}, "text", {**GOOD, "timestamp": "bad"}, {**GOOD, "event_id": "keep-me"}]
    with pipeline.client() as client:
        response = client.post("/batch", json=items)
        assert response.status_code == 202
        body = response.json()
        assert (body["accepted"], body["rejected"], body["failed"]) == (2, 3, 0)
        statuses = [(r["index"], r["status"], r.get("field")) for r in body["results"]]
        assert statuses == [
            (0, "accepted", None), (1, "rejected", "event_type"), (2, "rejected", None),
            (3, "rejected", "timestamp"), (4, "accepted", None),
        ]
        assert body["results"][4]["event_id"] == "keep-me"
        assert "JSON object" in body["results"][2]["message"]

        all_bad = client.post("/batch", json=[{"x": 1}, 5])
        assert all_bad.status_code == 422 and all_bad.json()["rejected"] == 2
        check_error(client.post("/batch", json=[]), 422, "invalid_event", "events", "no events")
        check_error(client.post("/batch", json={"events": "x"}), 422, None, "events")
        check_error(client.post("/batch", content=b"[{]", headers=JSON), 400, "malformed_json")
        big = {**GOOD, "blob": "z" * pipeline.settings.max_event_bytes}
        mixed = client.post("/batch", json=[GOOD, big]).json()
        assert mixed["results"][1]["code"] == "event_too_large"


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"limit": "0"}, "limit", ""),
        ({"limit": "abc"}, "limit", ""),
        ({"limit": "100000"}, "limit", ""),
        ({"limit": "-1"}, "limit", ""),
        ({"from": "last tuesday"}, "from", "RFC 3339"),
        ({"to": "2026-13-45"}, "to", "RFC 3339"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from", "earlier"),
        ({"cursor": "!!not-a-cursor!!"}, "cursor", "next_cursor"),
        ({"cursor": "WzEsMl0"}, "cursor", ""),  # valid base64 JSON, wrong shape
        ({"user_id": "u" * 500}, "user_id", "longer than"),
        ({"from": "9223372036854775808"}, "from", "2300"),
        ({"to": "99999999999999999999"}, "to", "2300"),
        ({"cursor": "WzkyMjMzNzIwMzY4NTQ3NzU4MDgsImEiXQ"}, "cursor", "next_cursor"),  # [2**63, "a"]
    ],
)
def test_activities_refuses_bad_parameters(pipeline: Pipeline, params, field, words) -> None:
    with pipeline.client() as client:
        check_error(client.get("/activities", params=params), 400, "invalid_parameter", field, words)


def test_unknown_routes_and_methods_answer_json(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        check_error(client.get("/nope"), 404, "not_found")
        check_error(client.get("/track"), 405, "method_not_allowed")


def test_injection_strings_in_filters_are_just_values(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        for value in ("' OR 1=1 --", "x'); DROP TABLE events; --", "\\", "{user_id:String}", "%", "\x00"):
            response = client.get("/activities", params={"user_id": value, "event_type": value, "session_id": value})
            assert response.status_code == 200, response.text
            assert response.json()["data"] == []
        assert client.post("/track", json=GOOD).status_code == 202  # still works after all of the above


# Property-based HTTP fuzzing; STREAMTRACK_FUZZ_EXAMPLES=3000 for a longer hunt (3,000 each passed).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_type": json_values, "event": json_values, "user_id": json_values, "anonymousId": json_values,
        "timestamp": json_values | st.text(max_size=30), "properties": json_values, "tags": json_values,
        "session_id": json_values, "url": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(msgspec.json.encode),
    event_like.map(msgspec.json.encode),
    st.lists(event_like, max_size=5).map(msgspec.json.encode),
)
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "", "a/b+json"])


@settings(max_examples=int(os.environ.get("STREAMTRACK_FUZZ_EXAMPLES", "150")), deadline=None)
@given(path=st.sampled_from(["/track", "/batch"]), body=bodies, content_type=content_types)
def test_no_body_gets_a_server_error(pipeline: Pipeline, path: str, body: bytes, content_type: str) -> None:
    with pipeline.client() as client:
        response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code in {202, 400, 413, 415, 422}, response.text
    payload = response.json()
    if response.status_code != 202 and "results" not in payload:
        assert payload["message"] and payload["code"]


@settings(max_examples=int(os.environ.get("STREAMTRACK_FUZZ_EXAMPLES", "100")), deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from(["user_id", "event_type", "session_id", "from", "to", "limit", "cursor", "other"]),
        st.text(max_size=40),
        max_size=5,
    )
)
def test_no_query_gets_a_server_error(pipeline: Pipeline, params: dict[str, str]) -> None:
    with pipeline.client() as client:
        response = client.get("/activities", params=params)
    assert response.status_code in {200, 400}, response.text
    if response.status_code == 400:
        assert response.json()["field"]


SEGMENT_KEY = {"Authorization": "Basic " + base64.b64encode(b"any-write-key:").decode()}
NOT_UTF8 = b"u-\xff\xfe"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/track", b'{"event_type":"page_view","user_id":"' + NOT_UTF8 + b'"}'),
        ("/track", b'{"event_type":"x","user_id":"u","properties":{"k' + NOT_UTF8 + b'":1}}'),
        ("/v1/track", b'{"event":"E","userId":"' + NOT_UTF8 + b'"}'),
        ("/v1/page", b'{"name":"' + NOT_UTF8 + b'","userId":"u"}'),
        ("/v1/identify", b'{"userId":"u","traits":{"name":"' + NOT_UTF8 + b'"}}'),
        ("/v1/batch", b'{"batch":[{"type":"track","event":"E","userId":"u"}],"writeKey":"' + NOT_UTF8 + b'"}'),
        ("/v1/import", b'{"batch":[{"type":"track","event":"E","userId":"u"}],"sentAt":"' + NOT_UTF8 + b'"}'),
        ("/v1/batch", b'{"batch":[{"type":"track","event":"' + NOT_UTF8 + b'","userId":"u"}]}'),
    ],
)
def test_invalid_utf8_in_a_json_body_is_a_clear_400(pipeline: Pipeline, path: str, body: bytes) -> None:
    """JSON text is UTF-8: other bytes in a string are the client's error (they answered 500 before)."""
    with pipeline.client() as client:
        response = client.post(path, content=body, headers={**JSON, **SEGMENT_KEY})
    check_error(response, 400, "malformed_json", None, "not UTF-8")


def test_invalid_utf8_in_one_batch_event_rejects_that_event_only(pipeline: Pipeline) -> None:
    body = b'[{"event_type":"x","user_id":"' + NOT_UTF8 + b'"},' + json.dumps(GOOD).encode() + b"]"
    with pipeline.client() as client:
        response = client.post("/batch", content=body, headers=JSON)
        assert response.status_code == 202, response.text
        first, second = response.json()["results"]
        assert (first["status"], first["code"], second["status"]) == ("rejected", "malformed_json", "accepted")
        assert "not UTF-8" in first["message"]
        only_bad = client.post("/batch", content=body.split(b",{")[0] + b"]", headers=JSON)
        assert only_bad.status_code == 422 and only_bad.json()["results"][0]["code"] == "malformed_json"
