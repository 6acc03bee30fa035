"""The Segment HTTP Tracking API over real HTTP, through the real broker, worker and ClickHouse.

Every call type on its own endpoint and in batches, both ways of giving the write key, gzip,
Segment's limits and 400 answers, messageId deduplication, the clock-skew correction, and
the traits and alias links the identity endpoints read back.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from streamtrack.api import Services, create_app
from streamtrack.api.server import BackgroundServer
from streamtrack.events import Event
from streamtrack.identities import UnknownIdentity, identity_records
from streamtrack.kafka import EventProducer
from streamtrack.kafka.ports import free_port
from streamtrack.normalize import Limits
from streamtrack.store import EventStore
from streamtrack.store.identities import group_profile, insert_identities, user_profile
from streamtrack.store.schema import schema_statements
from streamtrack.store.scoped import project_store
from streamtrack.timestamps import format_ms, parse_time
from tests.fixtures.pipeline import Pipeline

AUTH = {"Authorization": "Basic " + base64.b64encode(b"any-write-key:").decode()}


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stored(pipeline: Pipeline, client: httpx.Client, user_id: str, count: int) -> list[dict[str, Any]]:
    """The user's events once `count` are visible (newest first)."""

    def events() -> list[dict[str, Any]]:
        return client.get("/activities", params={"user_id": user_id, "limit": 1000}).json()["data"]

    pipeline.wait_for(lambda: len(events()) >= count, what=f"{count} events of {user_id}")
    return events()


def _post(client: httpx.Client, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": "application/json", **AUTH, **kwargs.pop("headers", {})}
    return client.post(path, content=json.dumps(body).encode(), headers=headers, **kwargs)


def test_every_call_type_on_its_endpoint(pipeline: Pipeline) -> None:
    user, anon, group = _id("u"), _id("anon"), _id("g")
    at = "2026-03-01T10:00:00.000Z"
    calls = {
        "/v1/page": {
            "userId": user,
            "anonymousId": anon,
            "name": "Pricing",
            "category": "Docs",
            "properties": {"url": "https://shop.example/pricing", "title": "Pricing"},
            "context": {"page": {"referrer": "https://search.example/"}, "ip": "203.0.113.9"},
        },
        "/v1/screen": {"userId": user, "name": "Home", "properties": {"tab": "feed"}},
        "/v1/track": {
            "userId": user,
            "event": "Order Completed",
            "properties": {"revenue": 42.5},
            "context": {"campaign": {"name": "spring", "medium": "email"}, "sessionId": "s-1"},
            "channel": "server",
        },
        "/v1/identify": {
            "userId": user,
            "anonymousId": anon,
            "traits": {"email": "a@example.com", "plan": "free"},
        },
        "/v1/group": {"userId": user, "groupId": group, "traits": {"name": "Acme"}},
        "/v1/alias": {"userId": user, "previousId": f"{user}-old"},
    }
    with pipeline.client() as client:
        for path, message in calls.items():
            answer = _post(client, path, {**message, "messageId": f"{user}{path}", "timestamp": at})
            assert (answer.status_code, answer.json()) == (200, {"success": True}), path
        events = {e["event_type"]: e for e in _stored(pipeline, client, user, len(calls))}

    assert sorted(events) == ["$alias", "$group", "$identify", "Order Completed", "page_view", "screen_view"]
    assert all(e["timestamp"] == at for e in events.values())  # no sentAt: the timestamp as given
    page = events["page_view"]
    assert (page["event_id"], page["url"], page["referrer"], page["anonymous_id"]) == (
        f"{user}/v1/page",
        "https://shop.example/pricing",
        "https://search.example/",
        anon,
    )
    assert page["properties"]["name"] == "Pricing" and page["properties"]["category"] == "Docs"
    assert page["properties"]["title"] == "Pricing"
    assert events["screen_view"]["properties"] == {"tab": "feed", "name": "Home"}
    track = events["Order Completed"]
    assert (track["campaign_id"], track["channel"], track["session_id"]) == ("spring", "email", "s-1")
    assert track["properties"]["revenue"] == 42.5
    assert track["properties"]["$extra"] == {"channel": "server"}  # unknown top-level fields are kept
    assert events["$identify"]["properties"]["traits"] == {"email": "a@example.com", "plan": "free"}
    assert events["$group"]["properties"] == {"group_id": group, "traits": {"name": "Acme"}}
    assert events["$alias"]["properties"] == {"previous_id": f"{user}-old"}


def test_batch_with_every_type_gzip_and_the_write_key_in_the_body(pipeline: Pipeline) -> None:
    user = _id("u")
    batch = [
        {"type": "page", "userId": user, "name": "Home", "messageId": f"{user}-1"},
        {"type": "screen", "userId": user, "name": "Cart", "messageId": f"{user}-2"},
        {"type": "track", "userId": user, "event": "Added", "messageId": f"{user}-3"},
        {"type": "identify", "userId": user, "traits": {"plan": "pro"}, "messageId": f"{user}-4"},
        {"type": "group", "userId": user, "groupId": f"{user}-g", "messageId": f"{user}-5"},
        {"type": "alias", "userId": user, "previousId": f"{user}-x", "messageId": f"{user}-6"},
    ]
    body = gzip.compress(json.dumps({"batch": batch, "writeKey": "key-in-body"}).encode())
    with pipeline.client() as client:
        answer = client.post(
            "/v1/batch",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert (answer.status_code, answer.json()) == (200, {"success": True})
        events = _stored(pipeline, client, user, len(batch))
        assert sorted(e["event_id"] for e in events) == [m["messageId"] for m in batch]
        imported = _post(client, "/v1/import", {"batch": [{"type": "track", "userId": user, "event": "Old"}]})
        assert imported.status_code == 200
        _stored(pipeline, client, user, len(batch) + 1)


def test_retried_messages_are_stored_once(pipeline: Pipeline) -> None:
    user = _id("u")
    batch = [
        {"type": "track", "userId": user, "event": "Clicked", "messageId": f"{user}-{i}"} for i in range(20)
    ]
    single = {"userId": user, "event": "Viewed", "messageId": f"{user}-single"}
    with pipeline.client() as client:
        for _ in range(3):  # an SDK retrying after lost answers: same messageIds each time
            assert _post(client, "/v1/batch", {"batch": batch}).status_code == 200
            assert _post(client, "/v1/track", single).status_code == 200
        _stored(pipeline, client, user, 21)
        pipeline.wait_for(
            lambda: pipeline.worker is not None and pipeline.worker.stats.duplicates >= 42,
            what="the worker to see every copy",
        )
        events = client.get("/activities", params={"user_id": user, "limit": 1000}).json()["data"]
        counts = client.get(
            "/analytics/breakdown", params={"dimension": "event_type", "user_id": user}
        ).json()
    assert len(events) == 21
    assert {row["value"]: row["events"] for row in counts["rows"]} == {"Clicked": 20, "Viewed": 1}


def test_clock_skew_is_corrected_from_sent_at(pipeline: Pipeline) -> None:
    """A device clock 2 h behind: the event keeps its 10 s before the upload, on the server's clock."""
    user = _id("u")
    device_now = datetime.now(UTC) - timedelta(hours=2)
    happened = device_now - timedelta(seconds=10)
    batch = {
        "sentAt": _iso(device_now),
        "batch": [
            {
                "type": "track",
                "userId": user,
                "event": "Skewed",
                "timestamp": _iso(happened),
                "messageId": f"{user}-a",
            },
            # its own sentAt wins over the batch's: 30 s between call and upload
            {
                "type": "track",
                "userId": user,
                "event": "Own",
                "timestamp": _iso(happened),
                "sentAt": _iso(happened + timedelta(seconds=30)),
                "messageId": f"{user}-b",
            },
            # no timestamp: the time of receipt
            {"type": "track", "userId": user, "event": "Now", "messageId": f"{user}-c"},
        ],
    }
    with pipeline.client() as client:
        assert _post(client, "/v1/batch", batch).status_code == 200
        events = {e["event_type"]: e for e in _stored(pipeline, client, user, 3)}
    for name, offset_ms in (("Skewed", 10_000), ("Own", 30_000), ("Now", 0)):
        event = events[name]
        assert event["timestamp"] == format_ms(parse_time(event["received_at"]) - offset_ms), name


def test_identity_endpoints_merge_traits_and_follow_aliases(pipeline: Pipeline) -> None:
    user, anon, group = _id("u"), _id("anon"), _id("g")
    t0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    batch = [
        {"type": "identify", "anonymousId": anon, "traits": {"visits": 1}, "timestamp": _iso(t0)},
        {
            "type": "identify",
            "userId": user,
            "anonymousId": anon,
            "traits": {"email": "a@x.io", "plan": "free"},
            "timestamp": _iso(t0 + timedelta(minutes=1)),
        },
        # RudderStack's SDKs send identify traits in context.traits
        {
            "type": "identify",
            "userId": user,
            "context": {"traits": {"plan": "pro"}},
            "timestamp": _iso(t0 + timedelta(minutes=2)),
        },
        {
            "type": "alias",
            "userId": user,
            "previousId": f"{user}-old",
            "timestamp": _iso(t0 + timedelta(minutes=3)),
        },
        {
            "type": "group",
            "userId": user,
            "groupId": group,
            "traits": {"name": "Acme", "size": 5},
            "timestamp": _iso(t0),
        },
        {
            "type": "group",
            "anonymousId": anon,
            "groupId": group,
            "traits": {"size": 7},
            "timestamp": _iso(t0 + timedelta(minutes=1)),
        },
    ]
    with pipeline.client() as client:
        assert _post(client, "/v1/batch", {"batch": batch}).status_code == 200
        pipeline.wait_for(
            lambda: client.get(f"/groups/{group}").json().get("group_calls") == 2, what="group calls"
        )
        for asked in (user, anon, f"{user}-old"):
            profile = client.get(f"/users/{asked}").json()
            assert profile == {
                "user_id": user,
                "ids": [user, anon, f"{user}-old"] if anon < f"{user}-old" else [user, f"{user}-old", anon],
                "traits": {"visits": 1, "email": "a@x.io", "plan": "pro"},
                "identify_calls": 3,
                "first_seen_at": "2026-03-01T10:00:00.000Z",
                "updated_at": "2026-03-01T10:02:00.000Z",
            }, asked
        assert client.get(f"/groups/{group}").json() == {
            "group_id": group,
            "traits": {"name": "Acme", "size": 7},
            "members": sorted([user, anon]),
            "group_calls": 2,
            "first_seen_at": "2026-03-01T10:00:00.000Z",
            "updated_at": "2026-03-01T10:01:00.000Z",
        }
        unknown = client.get("/users/nobody-at-all")
        assert (unknown.status_code, unknown.json()["code"], unknown.json()["field"]) == (
            404,
            "not_found",
            "user_id",
        )
        assert client.get("/groups/no-such-group").status_code == 404


def test_write_key_is_required(pipeline: Pipeline) -> None:
    message = {"userId": "u", "event": "E"}
    with pipeline.client() as client:
        answer = client.post("/v1/track", json=message)
        assert answer.status_code == 401
        assert answer.json()["code"] == "unauthorized" and "write key" in answer.json()["message"]
        assert client.post("/v1/track", json={**message, "writeKey": "k"}).status_code == 200
        bad = client.post("/v1/track", json=message, headers={"Authorization": "Basic %%%"})
        assert (bad.status_code, bad.json()["field"]) == (401, "Authorization")


def _message_of(size: int, user: str) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Big", "properties": {"pad": "x" * size}}


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        ("/v1/track", {"userId": "u"}, "invalid_event", "event"),
        ("/v1/track", {"event": "E"}, "invalid_event", "userId"),
        ("/v1/track", {"event": "E", "userId": "u", "timestamp": "soon"}, "invalid_event", "timestamp"),
        (
            "/v1/track",
            {"event": "E", "userId": "u", "timestamp": "2026-01-01T00:00:00Z", "sentAt": "later"},
            "invalid_event",
            "sentAt",
        ),
        ("/v1/track", {"event": "E", "userId": "u", "properties": [1]}, "invalid_event", "properties"),
        ("/v1/alias", {"userId": "u"}, "invalid_event", "previousId"),
        ("/v1/alias", {"previousId": "p"}, "invalid_event", "userId"),
        ("/v1/group", {"userId": "u"}, "invalid_event", "groupId"),
        ("/v1/identify", {"userId": "u", "traits": "plan"}, "invalid_event", "traits"),
        ("/v1/track", _message_of(33_000, "u"), "payload_too_large", None),
        ("/v1/batch", {"batch": [_message_of(20_000, "u")] * 26}, "payload_too_large", None),
        ("/v1/batch", {"batch": []}, "invalid_event", "batch"),
        ("/v1/batch", {"batch": [{"type": "track"}], "sentAt": "yesterday"}, "invalid_event", "sentAt"),
        ("/v1/batch", [{"type": "track"}], "invalid_event", "batch"),
        ("/v1/batch", {"batch": [{"type": "purchase", "userId": "u"}]}, "invalid_event", "batch[0].type"),
    ],
)
def test_bad_requests_get_400_with_the_field(
    pipeline: Pipeline, path: str, body: Any, code: str, field: str | None
) -> None:
    with pipeline.client() as client:
        answer = _post(client, path, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert (error["status"], error["code"], error.get("field")) == (400, code, field)
    assert error["message"]


def test_bad_bodies_get_400(pipeline: Pipeline) -> None:
    with pipeline.client() as client:

        def post(content: bytes, **headers: str) -> dict[str, Any]:
            answer = client.post(
                "/v1/batch", content=content, headers={"Content-Type": "application/json", **AUTH, **headers}
            )
            assert answer.status_code == 400, answer.text
            return answer.json()

        assert post(b"{not json")["code"] == "malformed_json"
        assert post(b"")["code"] == "empty_body"
        assert post(b"{}", **{"Content-Type": "application/xml"})["field"] == "Content-Type"
        assert post(b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"})["code"] == "malformed_body"
        assert post(b"{}", **{"Content-Encoding": "br"})["code"] == "unsupported_encoding"
        bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")  # 5 MB of JSON in ~5 KB
        assert len(bomb) < 10_000
        assert post(bomb, **{"Content-Encoding": "gzip"})["code"] == "payload_too_large"


def test_batch_stores_the_valid_messages_and_lists_the_others(pipeline: Pipeline) -> None:
    user = _id("u")
    batch = [
        {"type": "track", "userId": user, "event": "Ok", "messageId": f"{user}-ok"},
        _message_of(40_000, user),  # over 32 KB
        {"type": "track", "userId": user},  # no event name
        {"type": "page", "userId": user, "messageId": f"{user}-page"},
    ]
    with pipeline.client() as client:
        answer = _post(client, "/v1/batch", {"batch": batch})
        assert answer.status_code == 200
        assert answer.json()["success"] is True
        assert [(r["index"], r["code"], r.get("field")) for r in answer.json()["rejected"]] == [
            (1, "payload_too_large", "batch[1]"),
            (2, "invalid_event", "batch[2].event"),
        ]
        events = _stored(pipeline, client, user, 2)
    assert sorted(e["event_id"] for e in events) == [f"{user}-ok", f"{user}-page"]


def test_unreachable_broker_gives_503_with_retry_after(pipeline: Pipeline) -> None:
    """What Segment's SDKs retry: no broker acknowledgement, so 503 + Retry-After, nothing claimed stored."""
    settings = pipeline.settings.replace(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", produce_timeout_ms=1000
    )
    services = Services(settings, EventProducer(settings), pipeline.store, Limits())
    server = BackgroundServer(create_app(services)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            message = {"type": "track", "userId": "u", "event": "E"}
            for path, body in (
                ("/v1/track", message),
                ("/v1/batch", {"batch": [message, {"type": "track"}]}),
            ):
                answer = _post(client, path, body)
                assert answer.status_code == 503, path
                assert int(answer.headers["Retry-After"]) >= 1
                assert answer.json()["code"] == "broker_unavailable"
    finally:
        server.stop()
        services.producer.close(timeout=1)


def test_openapi_documents_the_segment_routes(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        paths = client.get("/schema/openapi.json").json()["paths"]
    for path in (
        "/v1/track",
        "/v1/identify",
        "/v1/page",
        "/v1/screen",
        "/v1/group",
        "/v1/alias",
        "/v1/batch",
        "/v1/import",
        "/users/{user_id}",
        "/groups/{group_id}",
    ):
        assert path in paths, path
    batch = paths["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["required"] == ["batch"]
    with pipeline.client() as client:  # the documented example works as printed
        answer = _post(client, "/v1/batch", batch["examples"]["example"]["value"])
    assert (answer.status_code, answer.json()) == (200, {"success": True})


def test_replayed_identity_records_are_read_once(clean_store: EventStore) -> None:
    """A worker replay (same token) is dropped by ClickHouse; a copy that races past is read once."""
    events = [
        Event(
            event_id="e1",
            event_type="$identify",
            timestamp=1_772_000_000_000,
            received_at=1_772_000_000_000,
            user_id="u",
            anonymous_id="a",
            properties={"traits": {"plan": "pro"}},
        ),
        Event(
            event_id="e2",
            event_type="$group",
            timestamp=1_772_000_000_000,
            received_at=1_772_000_000_000,
            user_id="u",
            properties={"group_id": "g", "traits": {"name": "Acme"}},
        ),
    ]
    traits, aliases = identity_records(events)
    for token in ("batch-1", "batch-1", None):
        insert_identities(clean_store, traits, aliases, dedup_token=token)
    [(rows,)] = clean_store.backend.query(f"SELECT count() FROM `{clean_store.database}`.`identities`")
    assert rows == 4  # the tokened replay was dropped, the untokened copy was not
    project = project_store(clean_store, "default")  # the events' project (no key: the default)
    profile = user_profile(project, "a")
    assert (profile.id, profile.ids, profile.traits, profile.calls) == ("u", ["u", "a"], {"plan": "pro"}, 1)
    group = group_profile(project, "g")
    assert (group.traits, group.members, group.calls) == ({"name": "Acme"}, ["u"], 1)
    other = project_store(clean_store, "another-project")  # ids are per project: nothing leaks across
    with pytest.raises(UnknownIdentity):
        user_profile(other, "a")
    with pytest.raises(UnknownIdentity):
        group_profile(other, "g")
    with pytest.raises(Exception, match="scope_project"):  # no project at all: refused, not answered for all
        user_profile(clean_store, "a")


def test_cluster_form_of_the_schema_is_valid_clickhouse_sql(store: EventStore) -> None:
    statements = schema_statements("analytics", "prod")
    for table in ("identities", "aliases"):  # a replicated local table and a Distributed table each
        assert sum(f"`{table}_local`" in s for s in statements) == 2
    for statement in statements:
        [(formatted,)] = store.backend.query("SELECT formatQuery({sql:String})", {"sql": statement})
        assert "ON CLUSTER prod" in formatted


def test_analytics_count_an_anonymous_visitor_and_the_user_it_became_once(pipeline: Pipeline) -> None:
    """Alias merging: identify (anonymous id -> user) and alias (old id -> user) links join their events."""
    anon, user, old, user2 = _id("anon"), _id("u"), _id("old"), _id("u2")
    day = datetime(2025, 5, 5, 10, tzinfo=UTC)

    def at(minute: int) -> str:
        return _iso(day + timedelta(minutes=minute))

    batch = [
        {
            "type": "page",
            "anonymousId": anon,
            "properties": {"url": "https://shop.example/"},
            "timestamp": at(0),
        },
        {"type": "track", "anonymousId": anon, "event": "Cart", "timestamp": at(1)},
        {
            "type": "identify",
            "userId": user,
            "anonymousId": anon,
            "traits": {"plan": "pro"},
            "timestamp": at(2),
        },
        {"type": "track", "userId": user, "event": "Purchased", "timestamp": at(3)},
        {"type": "track", "userId": old, "event": "Purchased", "timestamp": at(4)},
        {"type": "alias", "userId": user2, "previousId": old, "timestamp": at(5)},
    ]
    window = {"from": "2025-05-05T00:00:00Z", "to": "2025-05-06T00:00:00Z"}
    with pipeline.client() as client:
        assert _post(client, "/v1/batch", {"batch": batch}).status_code == 200

        def series() -> dict[str, Any]:
            return client.get("/analytics/timeseries", params={**window, "interval": "day"}).json()

        pipeline.wait_for(
            lambda: sum(p["events"] for p in series()["series"][0]["points"]) == 6, what="6 events"
        )
        [point] = [p for p in series()["series"][0]["points"] if p["events"]]
        assert point["users"] == 2  # anon + user are one person, old + user2 another (4 ids)
        funnel = client.get(
            "/analytics/funnel", params={**window, "steps": ["page_view", "Cart", "Purchased"]}
        ).json()
        assert [s["users"] for s in funnel["steps"]] == [1, 1, 1]  # the anonymous start converts as the user
        breakdown = client.get("/analytics/breakdown", params={**window, "dimension": "event_type"}).json()
        assert {r["value"]: r["users"] for r in breakdown["rows"]} == {
            "page_view": 1,
            "Cart": 1,
            "$identify": 1,
            "Purchased": 2,
            "$alias": 1,
        }
