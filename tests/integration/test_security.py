"""Keys, project isolation, injection, rate limits, the bot filter, CORS and erasure, on the real pipeline.

One pipeline with auth on (the real broker, the worker, this module's ClickHouse database) and
two projects, A and B, whose events share a user id. Every route the app serves is found from
the app itself, so an endpoint added later is checked too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from streamtrack.api import Services, create_app
from streamtrack.api.auth import Access, access_of
from streamtrack.api.server import BackgroundServer
from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import load_settings
from streamtrack.kafka import EventProducer
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.loadgen.sender import LoadPlan, run_load
from streamtrack.loadgen.traffic import Traffic
from streamtrack.normalize import Limits
from streamtrack.smoke import SmokeFailure, run_smoke
from streamtrack.store import EventStore
from streamtrack.store.keys import add_key, create_project, migrate_keys, revoke_keys
from streamtrack.telemetry import metrics
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline

SHARED_USER = "shared-user"
INJECTIONS = [
    "' OR 1=1 --",
    "x' OR project_id != '",
    "'); DROP TABLE events; --",
    "\\' OR 1=1 #",
    "{project_id:String}",
    "%' UNION SELECT * FROM system.tables --",
]


@dataclasses.dataclass
class Project:
    project_id: str
    write: str
    read: str


@dataclasses.dataclass
class Secure:
    pipeline: Pipeline
    a: Project
    b: Project

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.pipeline.client(headers=headers, **kwargs)


def make_project(store: EventStore, name: str) -> Project:
    project_id = f"{name}-{uuid.uuid4().hex[:6]}"
    create_project(store, project_id, name)
    write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
    add_key(store, project_id, write)
    add_key(store, project_id, read)
    return Project(project_id, write.secret, read.secret)


IDENTIFY_ROWS = "project_id = {p:String} AND user_id = {u:String} AND event_type = '$identify'"


def stored(store: EventStore, where: str = "1", **params: str) -> list[tuple]:
    sql = f"SELECT project_id, user_id, event_type, is_bot FROM `{store.database}`.events WHERE {where} ORDER BY event_id"
    return store.backend.query(sql, params)


def seed(secure: Secure, project: Project, marker: str) -> None:
    """Events of every kind the read endpoints look at, for SHARED_USER and a user of the project's own."""
    now = int(time.time() * 1000)
    events = []
    for user in (SHARED_USER, f"{marker}-only"):
        for step, (kind, offset) in enumerate(
            [("page_view", 0), ("add_to_cart", 60_000), ("checkout_started", 120_000), ("purchase", 180_000)]
        ):
            events.append({
                "event_id": f"{marker}-{user}-{step}", "event_type": kind, "user_id": user, "session_id": f"{marker}-s",
                "url": f"https://{marker}.test/page", "referrer": f"https://{marker}.ref/", "channel": marker,
                "campaign_id": marker, "timestamp": now - 3_600_000 + offset, "properties": {"plan": marker},
                "project_id": "someone-else",  # must be ignored: the project comes from the key
            })
    with secure.client(project.write) as client:
        response = client.post("/batch", json=events)
        assert response.status_code == 202 and response.json()["accepted"] == len(events), response.text


@pytest.fixture(scope="module")
def secure(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[Secure]:
    env = pipeline_env(
        broker, store.database, engine_path.parent,
        STREAMTRACK_AUTH="on", STREAMTRACK_KEY_CACHE_SECONDS="1", STREAMTRACK_BOT_EVENTS_PER_SECOND="10",
        STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0", STREAMTRACK_RATE_LIMIT_KEY_PER_S="0",
        STREAMTRACK_CORS_ORIGINS="https://shop.example", STREAMTRACK_ANONYMIZE_IP="on",
    )
    settings = load_settings(env=env)
    running, stop = start_pipeline(settings, store)
    migrate_keys(store)
    secure = Secure(running, make_project(store, "a"), make_project(store, "b"))
    seed(secure, secure.a, "a")
    seed(secure, secure.b, "b")
    running.wait_for(lambda: len(stored(store)) == 16, what="both projects' events stored")
    yield secure
    stop()


def routes(secure: Secure) -> list[tuple[str, str, Access]]:
    """(method, concrete path, access) of every route the app serves, path parameters filled in."""
    app = secure.pipeline.services and create_app(secure.pipeline.services)
    found = []
    for route in app.routes:
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in sorted(getattr(route, "methods", set()) - {"OPTIONS", "HEAD"}):
            found.append((method, path, access_of(path)))
    return found


def valid_body(path: str) -> dict[str, object]:
    """A body each route would accept, so that only the key decides."""
    message = {"type": "track", "event": "x", "userId": "u"}
    if path in ("/v1/batch", "/v1/import"):
        return {"batch": [message]}
    return message if path.startswith("/v1/") else {"event_type": "x", "user_id": "u"}


def test_every_endpoint_refuses_missing_wrong_revoked_and_wrong_kind_keys(secure: Secure) -> None:
    store = secure.pipeline.store
    revoked = make_project(store, "revoked")
    with secure.client() as client:
        assert client.get("/activities", headers={"Authorization": f"Bearer {revoked.read}"}).status_code == 200
    revoke_keys(store, revoked.read[:12])
    revoke_keys(store, revoked.write[:12])
    with secure.client() as client:
        secure.pipeline.wait_for(  # each replica trusts a lookup for STREAMTRACK_KEY_CACHE_SECONDS (1 s here)
            lambda: client.get("/activities", headers={"Authorization": f"Bearer {revoked.read}"}).status_code == 401,
            what="the revoked key refused",
        )
    checked = 0
    with secure.client() as client:
        for method, path, access in routes(secure):
            if access is Access.PUBLIC:
                continue
            right, wrong_kind = (secure.a.write, secure.a.read) if access is Access.WRITE else (secure.a.read, secure.a.write)
            revoked_key = revoked.write if access is Access.WRITE else revoked.read
            cases = {
                "missing": ({}, 401, "missing_key"),
                "wrong": ({"Authorization": "Bearer str_" + "x" * 43}, 401, "invalid_key"),
                "revoked": ({"X-StreamTrack-Key": revoked_key}, 401, "invalid_key"),
                "wrong kind": ({"Authorization": f"Bearer {wrong_kind}"}, 403, "wrong_key_kind"),
            }
            if path.startswith("/v1/"):  # Segment's API may carry the key in the body: its handler answers
                cases["missing"] = ({}, 401, "unauthorized")
            for case, (headers, status, code) in cases.items():
                response = client.request(method, path, headers=headers, json=valid_body(path))
                assert response.status_code == status, (method, path, case, response.text)
                assert response.json()["code"] == code
                if status == 401 and code != "unauthorized":
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert right  # the right key is exercised by the other tests of each endpoint
            checked += 1
    assert checked >= 15  # /track, /batch, /v1/*, /activities, /analytics/*, /pipeline/status, profiles, erasure


def test_keys_are_accepted_the_ways_clients_send_them(secure: Secure) -> None:
    with secure.client() as client:
        for headers in ({"Authorization": f"Bearer {secure.a.read}"}, {"X-StreamTrack-Key": secure.a.read}):
            assert client.get("/activities", headers=headers).status_code == 200
        basic = client.get("/activities", auth=(secure.a.read, ""))
        assert basic.status_code == 200
        # navigator.sendBeacon: text/plain JSON, the key in the query string (ingestion only)
        beacon = client.post(f"/track?key={secure.a.write}", content=b'{"event_type":"beacon","user_id":"b1"}',
                             headers={"Content-Type": "text/plain;charset=UTF-8"})
        assert beacon.status_code == 202, beacon.text
        assert client.get(f"/activities?key={secure.a.read}").status_code == 401  # not for reads
    secure.pipeline.wait_for(lambda: stored(secure.pipeline.store, "user_id = 'b1'") != [], what="the beacon event")
    assert stored(secure.pipeline.store, "user_id = 'b1'") == [(secure.a.project_id, "b1", "beacon", 0)]


def test_the_project_comes_from_the_key_never_the_body(secure: Secure) -> None:
    rows = stored(secure.pipeline.store, "user_id = {u:String}", u=SHARED_USER)
    assert sorted({r[0] for r in rows}) == sorted([secure.a.project_id, secure.b.project_id])
    assert all(r[0] != "someone-else" for r in stored(secure.pipeline.store))


def activity_users(client: httpx.Client, **params: str) -> list[tuple[str, str]]:
    response = client.get("/activities", params={"limit": "1000", **params})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        return []
    return [(row["event_id"], row["user_id"]) for row in response.json()["data"]]


def test_a_read_key_of_project_a_never_sees_a_row_of_project_b_in_activities(secure: Secure) -> None:
    with secure.client(secure.a.read) as client:
        everything = activity_users(client)
        assert everything and not any(event_id.startswith("b-") for event_id, _ in everything)
        tried = [
            {"user_id": SHARED_USER}, {"user_id": "b-only"}, {"event_type": "purchase"}, {"session_id": "b-s"},
            {"from": "0"}, {"to": "4102444800"}, {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
            {"project_id": secure.b.project_id}, {"project": secure.b.project_id},
        ]
        for params in tried:
            rows = activity_users(client, **params)
            assert not any(event_id.startswith("b-") for event_id, _ in rows), params
        assert activity_users(client, user_id="b-only") == []
        assert {e for e, _ in activity_users(client, user_id=SHARED_USER)} == {f"a-{SHARED_USER}-{i}" for i in range(4)}
        for value in INJECTIONS:
            for name in ("user_id", "event_type", "session_id", "from", "to", "cursor"):
                rows = activity_users(client, **{name: value})
                assert not any(event_id.startswith("b-") for event_id, _ in rows), (name, value)
    assert len(stored(secure.pipeline.store)) >= 16  # the table is still there and whole


def test_cors_on_ingestion_only(secure: Secure) -> None:
    with secure.client() as client:
        preflight = client.options("/track", headers={"Origin": "https://shop.example",
                                                      "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert "X-StreamTrack-Key" in preflight.headers["Access-Control-Allow-Headers"]
        refused = client.options("/track", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and refused.json()["code"] == "origin_not_allowed"
        posted = client.post("/track", headers={"Origin": "https://shop.example", "X-StreamTrack-Key": secure.a.write},
                             json={"event_type": "cors", "user_id": "c1"})
        assert posted.status_code == 202 and posted.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        read = client.get("/activities", headers={"Origin": "https://shop.example", "X-StreamTrack-Key": secure.a.read})
        assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read.headers


def test_bot_filter_flags_a_burst_and_known_agents_and_lets_normal_traffic_through(secure: Secure) -> None:
    flagged_before = metrics.BOT_EVENTS.labels("flagged")._value.get()
    now = int(time.time() * 1000)
    burst = [{"event_type": "click", "user_id": "burst", "event_id": f"burst-{i}", "timestamp": now - 5000 + i * 20}
             for i in range(15)]
    person = [{"event_type": "click", "user_id": "person", "event_id": f"person-{i}", "timestamp": now - 5000 + i * 400}
              for i in range(8)]
    with secure.client(secure.a.write) as client:
        assert client.post("/batch", json=burst + person).status_code == 202
        crawler = client.post("/track", json={"event_type": "page_view", "user_id": "crawler"},
                              headers={"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"})
        assert crawler.status_code == 202
    store = secure.pipeline.store
    where = "user_id IN ('burst', 'person', 'crawler')"
    secure.pipeline.wait_for(lambda: len(stored(store, where)) == 24, what="the bot test's events")
    verdicts = {(user, bot) for _, user, _, bot in stored(store, where)}
    assert verdicts == {("burst", 1), ("person", 0), ("crawler", 1)}
    secure.pipeline.wait_for(  # counted once the batch is committed, just after the rows are visible
        lambda: metrics.BOT_EVENTS.labels("flagged")._value.get() - flagged_before == 16, what="16 bots counted"
    )


def test_erasure_removes_one_users_rows_in_the_callers_project_only(secure: Secure) -> None:
    store = secure.pipeline.store
    for project in (secure.a, secure.b):  # traits of the same user id in both projects
        identify = {"type": "identify", "userId": SHARED_USER, "traits": {"email": f"{project.project_id}@x.test"}}
        with secure.client() as client:
            assert client.post("/v1/identify", json=identify, auth=(project.write, "")).status_code == 200
        with secure.client(project.read) as client:
            secure.pipeline.wait_for(lambda: client.get(f"/users/{SHARED_USER}").status_code == 200, what="traits")
        # The traits are stored just before their $identify event (the worker's order): wait for both.
        secure.pipeline.wait_for(lambda p=project: bool(stored(store, IDENTIFY_ROWS, p=p.project_id, u=SHARED_USER)),
                                 what="the $identify event")
    before_a = stored(store, "project_id = {p:String}", p=secure.a.project_id)
    before_b = stored(store, "project_id = {p:String}", p=secure.b.project_id)
    with secure.client(secure.a.read) as client:
        response = client.delete(f"/users/{SHARED_USER}/events")
        assert response.status_code == 200, response.text
        assert response.json() == {"project_id": secure.a.project_id, "user_id": SHARED_USER, "deleted_rows": 5}
        assert client.get(f"/users/{SHARED_USER}").status_code == 404  # the traits are gone too
        again = client.delete(f"/users/{SHARED_USER}/events")
        assert again.json()["deleted_rows"] == 0
        for value in INJECTIONS:
            response = client.delete(f"/users/{quote(value, safe='')}/events")
            assert response.status_code == 200 and response.json()["deleted_rows"] == 0, (value, response.text)
    after_a = stored(store, "project_id = {p:String}", p=secure.a.project_id)
    assert after_a == [row for row in before_a if row[1] != SHARED_USER]
    assert stored(store, "project_id = {p:String}", p=secure.b.project_id) == before_b  # B's same user untouched
    with secure.client(secure.b.read) as client:
        assert client.get(f"/users/{SHARED_USER}").json()["traits"] == {"email": f"{secure.b.project_id}@x.test"}
    # What was derived from the rows goes too: the totals (a daily rollup) count what remains.
    with secure.client(secure.a.read) as client:
        overview = client.get("/analytics/overview").json()
    people = [row for row in after_a if not row[3]]
    assert overview["total_events"] == len(people)
    assert overview["unique_users"] == len({row[1] for row in people})


def test_rate_limits_answer_429_with_retry_after_and_recover(secure: Secure) -> None:
    settings = secure.pipeline.settings.replace(rate_limit_key_per_s=2, rate_limit_address_per_s=0)
    services = Services(settings, EventProducer(settings), secure.pipeline.store, Limits())
    server = BackgroundServer(create_app(services)).start()
    limited_before = metrics.RATE_LIMITED.labels("key")._value.get()
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers={"X-StreamTrack-Key": secure.a.read}) as client:
            statuses = [client.get("/activities", params={"limit": "1"}).status_code for _ in range(8)]
            assert statuses[:4] == [200] * 4  # the burst: twice the rate
            assert 429 in statuses[4:]
            refused = client.get("/activities")
            assert refused.status_code == 429
            assert refused.json()["code"] == "rate_limited" and refused.headers["Retry-After"] == "1"
            time.sleep(int(refused.headers["Retry-After"]))  # what a client does; then it is served again
            assert client.get("/activities", params={"limit": "1"}).status_code == 200
            other = client.get("/activities", headers={"X-StreamTrack-Key": secure.b.read})
            assert other.status_code == 200  # buckets are per key
    finally:
        server.stop()
        services.close()
    assert metrics.RATE_LIMITED.labels("key")._value.get() > limited_before


def test_per_address_limit(secure: Secure) -> None:
    settings = secure.pipeline.settings.replace(rate_limit_key_per_s=0, rate_limit_address_per_s=1)
    services = Services(settings, EventProducer(settings), secure.pipeline.store, Limits())
    server = BackgroundServer(create_app(services)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            statuses = [client.get("/activities", headers={"X-StreamTrack-Key": "bad"}).status_code for _ in range(4)]
            assert statuses[:2] == [401, 401] and statuses[2:] == [429, 429]  # bad keys count too
            assert client.get("/healthz").status_code == 200  # public paths are not limited
    finally:
        server.stop()
        services.close()


def test_pipeline_status_counts_only_the_callers_project(secure: Secure) -> None:
    fresh = make_project(secure.pipeline.store, "status")
    with secure.client(fresh.write) as client:
        events = [{"event_type": "page_view", "user_id": f"s{i}"} for i in range(3)]
        assert client.post("/batch", json=events).status_code == 202
    secure.pipeline.wait_for(
        lambda: len(stored(secure.pipeline.store, "project_id = {p:String}", p=fresh.project_id)) == 3,
        what="the status project's events",
    )
    with secure.client(fresh.read) as client:
        status = client.get("/pipeline/status").json()
    # at most its own 3 events in the minute; the pipeline as a whole received over 40 by now
    assert status["store_ok"] is True and status["ingest_rate_per_s"] <= 3 / 60


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


B_MARKS = ("b.test", "b.ref", '"b"', "b-only", "b-s")
"""What only project B's events carry: an answer to A's key that holds one of them leaked B's rows."""


def analytics_calls() -> list[tuple[str, dict[str, object]]]:
    """Every analytics endpoint with each of its parameters set to B's values, then to injection strings."""
    now = int(time.time() * 1000)
    span = {"from": iso(now - 2 * 86_400_000), "to": iso(now + 86_400_000)}
    filters: dict[str, list[object]] = {
        "event_type": ["purchase"], "user_id": ["b-only", SHARED_USER], "url": ["https://b.test/page"],
        "channel": ["b"], "property": ["plan:b"],
    }
    dims = ["event_type", "url", "referrer", "channel", "campaign", "property:plan"]
    endpoints: dict[str, dict[str, list[object]]] = {
        "/analytics/overview": {},
        "/analytics/timeseries": {**filters, "interval": ["hour", "day"], "group_by": dims, "top": ["3"]},
        "/analytics/breakdown": {**filters, "dimension": dims, "limit": ["50"]},
        "/analytics/top-pages": {"limit": ["50"]},
        "/analytics/active-users": {"window_minutes": ["1440"], "date": [time.strftime("%Y-%m-%d", time.gmtime())]},
        "/analytics/sessions": {},
        "/analytics/funnel": {"window_seconds": ["86400"]},
        "/analytics/retention": {"period": ["day", "week"], "periods": ["3"]},
    }
    calls = []
    for path, params in endpoints.items():
        base: dict[str, object] = {} if path in ("/analytics/overview", "/analytics/active-users") else dict(span)
        if path == "/analytics/breakdown":
            base["dimension"] = "channel"
        if path == "/analytics/funnel":
            base["steps"] = ["page_view", "add_to_cart", "purchase"]
        calls.append((path, base))
        for name in [*params, *base, "project_id", "project"]:
            for value in [*params.get(name, []), *INJECTIONS]:
                calls.append((path, {**base, name: value}))
    return calls


def test_a_read_key_of_project_a_never_sees_a_row_of_project_b_in_analytics(secure: Secure) -> None:
    store = secure.pipeline.store
    calls = analytics_calls()
    statuses: dict[int, int] = {}
    with secure.client(secure.a.read) as client:
        for path, params in calls:
            response = client.get(path, params=params)  # type: ignore[arg-type]
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (200, 400), (path, params, response.text)
            if response.status_code == 400:
                assert response.json()["code"] in ("invalid_parameter", "bad_request"), response.text
                continue
            leaked = [mark for mark in B_MARKS if mark in response.text]
            assert not leaked, (path, params, leaked, response.text[:500])
        only_b = client.get("/analytics/timeseries", params={**analytics_calls()[1][1], "user_id": "b-only"}).json()
        assert sum(p["events"] for s in only_b["series"] for p in s["points"]) == 0
        funnel = client.get("/analytics/funnel", params=analytics_calls()[-1][1] | {
            "steps": ["page_view", "add_to_cart", "checkout_started", "purchase"], "window_seconds": "86400",
            "from": iso(int(time.time() * 1000) - 86_400_000), "to": iso(int(time.time() * 1000) + 60_000)}).json()
        assert funnel["steps"][0]["users"] == 1  # a-only (shared-user was erased from A), never B's users
    assert statuses.get(200, 0) > len(calls) // 2 and len(calls) > 150
    # The totals are the project's own: a fresh project with 3 events (and a bot) among everyone's.
    fresh = make_project(store, "totals")
    with secure.client(fresh.write) as client:
        events = [{"event_type": "page_view", "user_id": f"t{i}", "session_id": f"t{i}"} for i in range(3)]
        assert client.post("/batch", json=events).status_code == 202
        bot = client.post("/track", json={"event_type": "page_view", "user_id": "tb"}, headers={"User-Agent": "Googlebot/2.1"})
        assert bot.status_code == 202
    secure.pipeline.wait_for(lambda: len(stored(store, "project_id = {p:String}", p=fresh.project_id)) == 4,
                             what="the totals project's events")
    with secure.client(fresh.read) as client:
        overview = client.get("/analytics/overview").json()
        assert (overview["total_events"], overview["unique_users"], overview["unique_sessions"]) == (3, 3, 3)
        assert client.get("/analytics/active-users", params={"window_minutes": "60"}).json()["active_now"] == 3


def test_load_generator_sends_with_a_write_key(secure: Secure) -> None:
    fresh = make_project(secure.pipeline.store, "load")
    base = {"url": secure.pipeline.url, "rate": None, "count": 40, "batch_size": 10, "retries": 0}
    refused = asyncio.run(run_load(LoadPlan(**base), Traffic(seed=1, run_id="lg-nokey")))  # type: ignore[arg-type]
    assert (refused.accepted, refused.errors) == (0, 40)
    sent = asyncio.run(run_load(LoadPlan(**base, key=fresh.write), Traffic(seed=1, run_id="lg-key")))  # type: ignore[arg-type]
    assert (sent.accepted, sent.errors) == (40, 0)
    secure.pipeline.wait_for(
        lambda: len(stored(secure.pipeline.store, "project_id = {p:String}", p=fresh.project_id)) == 40,
        what="the load generator's events in its project",
    )


def test_two_projects_may_use_the_same_event_id(secure: Secure) -> None:
    """Dedup is per project: B's event with A's client-chosen id is B's own event, not a copy of A's."""
    for project in (secure.a, secure.b):
        with secure.client(project.write) as client:
            event = {"event_type": "signup", "user_id": "same", "event_id": "same-id", "timestamp": 1_769_860_800_000}
            assert client.post("/track", json=event).status_code == 202
            assert client.post("/track", json=event).status_code == 202  # a retry: stored once
    store = secure.pipeline.store
    secure.pipeline.wait_for(lambda: len(stored(store, "event_id = 'same-id'")) == 2, what="one copy per project")
    for project in (secure.a, secure.b):
        with secure.client(project.read) as client:
            assert [row["event_id"] for row in client.get("/activities", params={"user_id": "same"}).json()["data"]] == ["same-id"]


def test_segment_api_takes_the_write_key_from_basic_auth_or_the_body(secure: Secure) -> None:
    track = {"type": "track", "event": "Seg", "userId": "seg-user"}
    with secure.client() as client:
        assert client.post("/v1/track", json=track, auth=(secure.a.write, "")).status_code == 200  # what the SDKs send
        assert client.post("/v1/track", json={**track, "writeKey": secure.b.write}).status_code == 200  # analytics.js
        batch = client.post("/v1/batch", json={"batch": [track], "writeKey": secure.b.write})
        assert batch.status_code == 200, batch.text
        for key, status, code in ((secure.b.read, 403, "wrong_key_kind"), ("stw_" + "x" * 43, 401, "invalid_key"),
                                  (None, 401, "unauthorized")):
            body = {**track, **({"writeKey": key} if key else {})}
            refused = client.post("/v1/track", json=body)
            assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
    store = secure.pipeline.store
    secure.pipeline.wait_for(lambda: len(stored(store, "user_id = 'seg-user'")) == 3, what="the Segment events")
    assert sorted(row[0] for row in stored(store, "user_id = 'seg-user'")) == sorted(
        [secure.a.project_id, secure.b.project_id, secure.b.project_id]
    )


def test_ip_addresses_are_stored_anonymised(secure: Secure) -> None:
    with secure.client(secure.a.write) as client:
        assert client.post("/track", json={"event_type": "ip", "user_id": "ip-native"}).status_code == 202
        segment = {"type": "track", "event": "ip", "userId": "ip-segment", "context": {"ip": "203.0.113.77"}}
        assert client.post("/v1/track", json=segment, auth=(secure.a.write, "")).status_code == 200
    store = secure.pipeline.store
    where = "user_id IN ('ip-native', 'ip-segment')"
    secure.pipeline.wait_for(lambda: len(stored(store, where)) == 2, what="the two events")
    rows = store.backend.query(f"SELECT user_id, ip FROM `{store.database}`.events WHERE {where} ORDER BY user_id")
    assert rows == [("ip-native", "127.0.0.0"), ("ip-segment", "203.0.113.0")]


def test_openapi_documents_the_key_schemes(secure: Secure) -> None:
    with secure.client() as client:  # the docs are public
        document = client.get("/schema/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert (schemes["header"]["in"], schemes["header"]["name"]) == ("header", "X-StreamTrack-Key")
    assert {"bearer": []} in document["security"]


def test_smoke_test_with_keys(secure: Secure) -> None:
    lines: list[str] = []
    result = run_smoke(secure.pipeline.url, timeout_s=60, say=lines.append, write_key=secure.a.write, read_key=secure.a.read)
    assert result.event_id.startswith("smoke-") and lines[-1].startswith("ok   GET /activities finds")
    with pytest.raises(SmokeFailure, match="POST /track answered 401"):
        run_smoke(secure.pipeline.url, timeout_s=10, say=lines.append)


def test_profiles_of_project_b_are_not_found_with_project_as_key(secure: Secure) -> None:
    with secure.client() as client:
        for body in ({"type": "identify", "userId": "b-profile", "traits": {"plan": "b"}},
                     {"type": "group", "userId": "b-profile", "groupId": "b-group", "traits": {"name": "b"}}):
            path = f"/v1/{body['type']}"
            assert client.post(path, json=body, auth=(secure.b.write, "")).status_code == 200
    with secure.client(secure.b.read) as client:
        secure.pipeline.wait_for(lambda: client.get("/groups/b-group").status_code == 200, what="B's group")
        assert client.get("/users/b-profile").json()["traits"] == {"plan": "b"}
    with secure.client(secure.a.read) as client:
        assert client.get("/users/b-profile").status_code == 404
        assert client.get("/groups/b-group").status_code == 404
        for value in INJECTIONS:
            for path in ("/users/{}", "/groups/{}"):
                response = client.get(path.format(quote(value, safe="")))
                assert response.status_code == 404 and not any(m in response.text for m in ("b-profile", "b-group"))


def test_segment_api_takes_every_key_form_the_readme_lists(secure: Secure) -> None:
    """Bearer, X-StreamTrack-Key, Basic and ?key= as on /track, and Segment's writeKey in the body."""
    user = f"forms-{uuid.uuid4().hex[:6]}"
    message = {"type": "track", "event": "Forms", "userId": user}
    forms: list[dict[str, object]] = [
        {"headers": {"Authorization": f"Bearer {secure.a.write}"}},
        {"headers": {"X-StreamTrack-Key": secure.a.write}},
        {"auth": (secure.a.write, "")},
        {"params": {"key": secure.a.write}},
        {"body_key": secure.a.write},
    ]
    with secure.client() as client:
        for form in forms:
            body = {**message, **({"writeKey": form["body_key"]} if "body_key" in form else {})}
            extra = {k: v for k, v in form.items() if k != "body_key"}
            single = client.post("/v1/track", json=body, **extra)  # type: ignore[arg-type]
            assert single.status_code == 200, (form, single.text)
            batch = {"batch": [message], **({"writeKey": form["body_key"]} if "body_key" in form else {})}
            many = client.post("/v1/batch", json=batch, **extra)  # type: ignore[arg-type]
            assert many.status_code == 200, (form, many.text)
        read_key = client.post("/v1/track", json=message, headers={"Authorization": f"Bearer {secure.a.read}"})
        assert (read_key.status_code, read_key.json()["code"]) == (403, "wrong_key_kind")
    store = secure.pipeline.store
    secure.pipeline.wait_for(lambda: len(stored(store, "user_id = {u:String}", u=user)) == 10, what="10 events")
    assert {row[0] for row in stored(store, "user_id = {u:String}", u=user)} == {secure.a.project_id}


def test_another_projects_burst_under_the_same_user_id_does_not_make_a_bot_here(secure: Secure) -> None:
    """B's public write key floods with A's user id (and A's event ids): A's events stay people's events."""
    now = int(time.time() * 1000)
    a_events = [{"event_type": "click", "user_id": "victim", "event_id": f"victim-{i}", "timestamp": now - 9000 + i * 300}
                for i in range(5)]
    b_flood = [{**event, "timestamp": now - 9000 + i} for i, event in enumerate(a_events * 6)]
    with secure.client(secure.a.write) as client:
        assert client.post("/batch", json=a_events).status_code == 202
    with secure.client(secure.b.write) as client:
        for i in range(0, len(b_flood), 5):  # in several requests, so the worker may see it in several batches
            assert client.post("/batch", json=[{**e, "event_id": f"flood-{i + j}"} for j, e in enumerate(b_flood[i:i + 5])]).status_code == 202
        assert client.post("/batch", json=a_events).status_code == 202  # A's very ids, in B
    store = secure.pipeline.store
    where = "user_id = 'victim'"
    secure.pipeline.wait_for(lambda: len(stored(store, where)) == 40, what="A's 5 and B's 35 events")
    rows = stored(store, where)
    assert [bot for project, _, _, bot in rows if project == secure.a.project_id] == [0] * 5
    assert sum(bot for project, _, _, bot in rows if project == secure.b.project_id) >= 30  # B's flood is B's bot
    with secure.client(secure.a.read) as client:
        assert [r["user_id"] for r in client.get("/activities", params={"user_id": "victim"}).json()["data"]] == ["victim"] * 5


def serve(secure: Secure, extra_handlers: list[object] | None = None, **changes: object) -> tuple[BackgroundServer, Services]:
    """Another API on this module's pipeline with some settings changed (stop both after use)."""
    settings = secure.pipeline.settings.replace(**changes)
    services = Services(settings, EventProducer(settings), secure.pipeline.store, Limits())
    return BackgroundServer(create_app(services, extra_handlers=extra_handlers or [])).start(), services  # type: ignore[arg-type]


def test_forwarded_for_is_believed_only_from_configured_proxies(secure: Secure) -> None:
    """Without trusted proxies (the default) a client cannot pick the address the limiter sees."""
    for trusted, expected in (("", [401, 401, 429, 429]), ("127.0.0.1", [401] * 4)):
        server, services = serve(secure, rate_limit_key_per_s=0, rate_limit_address_per_s=1, forwarded_allow_ips=trusted)
        try:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                statuses = [
                    client.get("/activities", headers={"X-StreamTrack-Key": "bad", "X-Forwarded-For": f"198.51.100.{i}"}).status_code
                    for i in range(4)
                ]
        finally:
            server.stop()
            services.close()
        assert statuses == expected, trusted


def test_the_load_generator_answers_the_dev_projects_key_only(secure: Secure) -> None:
    from streamtrack.api.loadgen_control import loadgen_router
    from streamtrack.auth.dev_keys import DEV_PROJECT
    from streamtrack.loadgen.control import LoadgenControl

    store = secure.pipeline.store
    create_project(store, DEV_PROJECT, "streamtrack dev")
    dev_read = new_key(KeyKind.READ)
    add_key(store, DEV_PROJECT, dev_read)
    control = LoadgenControl()
    server, services = serve(secure, extra_handlers=[loadgen_router(control)])
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for key in (secure.a.read, secure.b.read):
                headers = {"Authorization": f"Bearer {key}"}
                for method in ("GET", "POST", "DELETE"):
                    refused = client.request(method, "/dev/loadgen", headers=headers, json={"rate": 10})
                    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), (method, refused.text)
            assert client.post("/dev/loadgen", json={"rate": 10}, headers={"Authorization": f"Bearer {secure.a.write}"}).status_code == 403
            assert client.get("/dev/loadgen").status_code == 401
            dev = {"Authorization": f"Bearer {dev_read.secret}"}
            assert client.get("/dev/loadgen", headers=dev).json()["running"] is False
            invalid = client.post("/dev/loadgen", headers=dev, json={})  # past the key check, stopped by the body
            assert (invalid.status_code, invalid.json()["field"]) == (400, "rate")
            assert client.delete("/dev/loadgen", headers=dev).status_code == 200
    finally:
        control.stop()
        server.stop()
        services.close()


def test_pipeline_status_shows_instance_figures_to_an_admin_key_only(secure: Secure) -> None:
    admin = new_key(KeyKind.ADMIN)
    add_key(secure.pipeline.store, secure.a.project_id, admin)
    with secure.client(secure.a.read) as client:
        own = client.get("/pipeline/status").json()
    assert (own["consumer_lag"], own["dead_letters"]) == (None, None) and own["broker_ok"] is True
    with secure.client(admin.secret) as client:
        everything = client.get("/pipeline/status").json()
        assert isinstance(everything["consumer_lag"], int) and isinstance(everything["dead_letters"], int)
        assert client.get("/activities").status_code == 200  # an admin key reads what a read key reads
        assert client.post("/track", json={"event_type": "x", "user_id": "u"}).status_code == 403
    assert everything["ingest_rate_per_s"] >= own["ingest_rate_per_s"]


def test_every_answer_says_nosniff_and_the_pages_cannot_be_framed(secure: Secure) -> None:
    with secure.client() as client:
        answers = [
            client.get("/healthz"), client.get("/metrics"), client.get("/nope"), client.get("/activities"),
            client.get("/activities", headers={"X-StreamTrack-Key": secure.a.read}),
            client.post("/track", json={"event_type": "x", "user_id": "h"}, headers={"X-StreamTrack-Key": secure.a.write}),
            client.post("/track", content=b"{", headers={"X-StreamTrack-Key": secure.a.write}),
            client.options("/track", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}),
            client.get("/dashboard"), client.get("/dashboard/assets/dashboard.js"), client.get("/schema/openapi.json"),
            client.get("/schema/swagger"), client.get("/schema/assets/swagger-ui-bundle.js"),
        ]
        assert [a.headers.get("X-Content-Type-Options") for a in answers] == ["nosniff"] * len(answers)
        dashboard, swagger = client.get("/dashboard"), client.get("/schema/swagger")
    assert "frame-ancestors 'none'" in dashboard.headers["Content-Security-Policy"]
    policy = dict(part.strip().split(" ", 1) for part in swagger.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    scripts = re.findall(r"<script[^>]*>", swagger.text)
    assert scripts and all("src=" in tag for tag in scripts)  # nothing inline for the policy to refuse


def test_one_read_key_flooding_analytics_does_not_stall_another_projects_reads(secure: Secure) -> None:
    server, services = serve(secure, query_concurrency_per_key=2)
    span = {"from": iso(int(time.time() * 1000) - 2 * 86_400_000), "to": iso(int(time.time() * 1000) + 60_000)}
    flood_paths = ["/analytics/funnel?steps=page_view&steps=purchase", "/analytics/retention", "/analytics/sessions",
                   "/analytics/timeseries", "/activities"]

    async def run() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=100)) as client:
            flood = [
                client.get(path, params=span if "?" not in path else None, headers={"X-StreamTrack-Key": secure.a.read})
                for _ in range(8) for path in flood_paths
            ]
            flooding = asyncio.gather(*flood)
            others = []
            for _ in range(10):  # B's dashboard, one request after the other, while A floods
                others.append(await client.get("/analytics/overview", headers={"X-StreamTrack-Key": secure.b.read}))
            return list(await flooding), others

    try:
        flood, others = asyncio.run(run())
    finally:
        server.stop()
        services.close()
    assert [r.status_code for r in others] == [200] * 10, [r.text for r in others if r.status_code != 200]
    assert {r.status_code for r in flood} <= {200, 429}, {r.status_code: r.text for r in flood}
    refused = [r for r in flood if r.status_code == 429]
    assert refused and all(r.headers["Retry-After"] == "1" and r.json()["code"] == "rate_limited" for r in refused)


def test_each_read_is_bounded_in_clickhouse(secure: Secure) -> None:
    span = {"from": iso(int(time.time() * 1000) - 86_400_000), "to": iso(int(time.time() * 1000) + 60_000)}
    reads = [("/activities", {}), ("/analytics/timeseries", span), ("/analytics/breakdown", {**span, "dimension": "url"}),
             ("/analytics/funnel", {**span, "steps": ["page_view", "purchase"]})]
    for changes, status, code in (({"query_max_rows": 1}, 422, "query_too_large"),
                                  ({"query_max_memory_bytes": 1}, 503, "query_limit_exceeded")):
        server, services = serve(secure, **changes)
        try:
            with httpx.Client(base_url=server.url, timeout=30, headers={"X-StreamTrack-Key": secure.a.read}) as client:
                for path, params in reads:
                    response = client.get(path, params=params)
                    assert (response.status_code, response.json()["code"]) == (status, code), (changes, path, response.text)
                    assert status != 503 or response.headers["Retry-After"] == "5"
                assert client.get("/healthz").status_code == 200
        finally:
            server.stop()
            services.close()
    with secure.client(secure.a.read) as client:  # the default bounds leave ordinary reads alone
        assert client.get("/analytics/timeseries", params=span).status_code == 200
