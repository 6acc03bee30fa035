"""The /analytics/* endpoints over real HTTP on a seeded dataset with known answers.

The dataset (below) is small enough to count by hand; every expected number is worked out
in the comments. It comes with copies of the same event_id, as clients and replays send
them: one identical, three with another (server) timestamp, one of which arrives before its
original. Each copy is placed where counting it would change an answer (another hour
bucket, another day, a funnel step, a session's length), so every assertion also proves
that the worker's write path (`worker.sink`, fed here without Kafka) stores each event once,
the first copy to arrive. The API runs over real HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamtrack.config import load_settings
from streamtrack.events import Event
from streamtrack.kafka.local_broker import LocalBroker
from streamtrack.store import EventStore
from streamtrack.timestamps import format_ms, now_ms
from streamtrack.worker.sink import Sink
from tests.fixtures.pipeline import pipeline_env, start_pipeline

SHOP = "https://shop.test"


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def event(
    event_id: str,
    event_type: str,
    when: str,
    who: str,
    session: str = "",
    page: str = "/home",
    channel: str = "web",
    **fields: object,
) -> Event:
    user = {"anonymous_id": who} if who.startswith("anon") else {"user_id": who}
    ms = at(when)
    return Event(
        event_id=event_id,
        event_type=event_type,
        timestamp=ms,
        received_at=ms,
        session_id=session,
        url=f"{SHOP}{page}" if page else "",
        channel=channel,
        **user,
        **fields,
    )  # type: ignore[arg-type]


PRO, FREE = {"plan": "pro"}, {"plan": "free"}
# Monday 2026-01-05 is day 0; 2026-01-12 starts week 2.
EVENTS = [
    event("e1", "page_view", "2026-01-05T10:00:00", "alice", "s1", properties=PRO),
    event("e2", "add_to_cart", "2026-01-05T10:05:00", "alice", "s1", "/cart", properties=PRO),
    event("e3", "checkout_started", "2026-01-05T10:10:00", "alice", "s1", "/checkout", properties=PRO),
    event(
        "e4",
        "purchase",
        "2026-01-05T10:20:00",
        "alice",
        "s1",
        "/done",
        properties={"plan": "pro", "amount": 30},
    ),
    event(
        "e5",
        "page_view",
        "2026-01-05T11:00:00",
        "bob",
        "s2",
        channel="email",
        campaign_id="c1",
        properties=FREE,
    ),
    event(
        "e6",
        "add_to_cart",
        "2026-01-05T13:30:00",
        "bob",
        "s2",
        "/cart",
        channel="email",
        campaign_id="c1",
        properties=FREE,
    ),
    event("e7", "page_view", "2026-01-05T12:00:00", "anon-1", "s3", "/pricing", channel="ads"),
    event("e8", "page_view", "2026-01-05T12:30:00", "carol", "s4", properties=PRO),
    event("e9", "add_to_cart", "2026-01-05T12:40:00", "carol", "s4", "/cart", properties=PRO),
    event("e10", "page_view", "2026-01-06T09:00:00", "alice", "s5", properties=PRO),
    event("e15", "click", "2026-01-06T09:01:30", "alice", "s5"),
    event("e11", "click", "2026-01-06T09:30:00", "bob", "", channel="email"),
    event(
        "e12",
        "page_view",
        "2026-01-06T10:00:00",
        "dave",
        "s6",
        "/pricing",
        channel="social",
        properties={"n": 3},
    ),
    event("e13", "page_view", "2026-01-12T10:00:00", "alice", "s7"),
    event("e16", "scroll", "2026-01-12T10:05:00", "alice", "s7"),
    event("e14", "page_view", "2026-01-12T11:00:00", "dave", "s8", channel="social"),
]
BY_ID = {e.event_id: e for e in EVENTS}


def _copy(event_id: str, when: str) -> Event:
    original = BY_ID[event_id]
    fields = {f: getattr(original, f) for f in original.__struct_fields__}
    return Event(**{**fields, "timestamp": at(when), "received_at": at(when)})


COPIES = [
    BY_ID["e1"],  # identical
    # counted, it would put bob through add_to_cart (13:30) within 1 h and add an event to hour 13
    _copy("e5", "2026-01-05T13:00:00"),
    # EARLIER than the original: e7 counts at 11:58 (hour 11), and session s3 still has one event
    _copy("e7", "2026-01-05T11:58:00"),
    # counted, it would make dave active on 2026-01-07 and "retained" on day 1 of his cohort
    _copy("e12", "2026-01-07T00:30:00"),
]
USERS = 5  # alice, bob, anon-1, carol, dave


@pytest.fixture(scope="module")
def seeded(store: EventStore) -> dict[str, int]:
    """The dataset, its copies in separate inserts (stored as separate rows), two recent events."""
    now = now_ms()
    recent = [
        Event(
            event_id="r1",
            event_type="page_view",
            timestamp=now - 2 * 60_000,
            received_at=now,
            user_id="recent-1",
            session_id="rs1",
            url=f"{SHOP}/home",
        ),
        Event(
            event_id="r2",
            event_type="click",
            timestamp=now - 20 * 60_000,
            received_at=now,
            user_id="recent-2",
            session_id="rs2",
        ),
    ]
    sink = Sink(store, cache_events=1000, window_ms=3_600_000)
    sink.warm()
    early, late = [c for c in COPIES if c.event_id == "e7"], [c for c in COPIES if c.event_id != "e7"]
    for number, batch in enumerate((early, EVENTS + recent, late)):  # e7's copy arrives first: it is the one kept
        sink.write(batch, dedup_token=f"seed-{number}", batch_id=number + 1)
    return {"last_ms": now - 2 * 60_000}


@pytest.fixture(scope="module")
def api(
    broker: LocalBroker, store: EventStore, engine_path: Path, seeded: dict[str, int]
) -> Iterator[httpx.Client]:
    settings = load_settings(env=pipeline_env(broker, store.database, engine_path.parent))
    running, stop = start_pipeline(settings, store, with_worker=False)
    with running.client() as client:
        yield client
    stop()


def get(api: httpx.Client, path: str, **params: object) -> dict:
    response = api.get(f"/analytics/{path}", params=params)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response.json()


def test_each_event_is_stored_once(store: EventStore, seeded: dict[str, int]) -> None:
    stats = store.stats()
    assert (stats.rows, stats.distinct_events) == (len(EVENTS) + 2, len(EVENTS) + 2)


def test_overview(api: httpx.Client, seeded: dict[str, int]) -> None:
    assert get(api, "overview") == {
        "total_events": len(EVENTS) + 2,
        "unique_users": USERS + 2,
        "unique_sessions": 10,  # s1..s8, rs1, rs2
        "first_event_at": "2026-01-05T10:00:00.000Z",
        "last_event_at": format_ms(seeded["last_ms"]),
        "events_last_5m": 1,
    }


def points(series: dict) -> list[tuple[str, int, int]]:
    return [(p["t"], p["events"], p["users"]) for p in series["points"]]


def test_timeseries_by_day_counts_each_event_at_its_earliest_copy(api: httpx.Client) -> None:
    body = get(api, "timeseries", **{"from": "2026-01-05", "to": "2026-01-08", "interval": "day"})
    assert (body["interval"], body["from"], body["to"]) == (
        "day",
        "2026-01-05T00:00:00.000Z",
        "2026-01-08T00:00:00.000Z",
    )
    assert [s["name"] for s in body["series"]] == ["all"]
    assert points(body["series"][0]) == [
        ("2026-01-05T00:00:00.000Z", 9, 4),  # e1..e9: alice, bob, anon-1, carol
        ("2026-01-06T00:00:00.000Z", 4, 3),  # e10, e15, e11, e12: alice, bob, dave
        ("2026-01-07T00:00:00.000Z", 0, 0),  # only the copy of e12: not counted, the bucket is still there
    ]


def test_timeseries_by_hour(api: httpx.Client) -> None:
    body = get(
        api,
        "timeseries",
        **{"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T15:00:00Z", "interval": "hour"},
    )
    assert points(body["series"][0]) == [
        ("2026-01-05T10:00:00.000Z", 4, 1),  # e1 (and its identical copy, once), e2, e3, e4
        ("2026-01-05T11:00:00.000Z", 2, 2),  # e5, and e7 at its earliest copy 11:58
        ("2026-01-05T12:00:00.000Z", 2, 1),  # e8, e9 (e7's later copy is not counted)
        ("2026-01-05T13:00:00.000Z", 1, 1),  # e6 (e5's copy at 13:00 is not counted)
        ("2026-01-05T14:00:00.000Z", 0, 0),
    ]


def test_timeseries_auto_interval_and_filters(api: httpx.Client) -> None:
    body = get(api, "timeseries", **{"from": "2026-01-05", "to": "2026-01-17", "channel": "social"})
    assert body["interval"] == "hour"  # 288 buckets; auto picks the finest interval with at most 300
    body = get(api, "timeseries", **{"from": "2026-01-05", "to": "2026-01-26", "channel": "social"})
    assert body["interval"] == "day"  # 504 hours would be too many
    days = dict((t, e) for t, e, _ in points(body["series"][0]))
    assert (len(days), sum(days.values())) == (21, 2)  # e12, e14; not e12's copy
    assert days["2026-01-06T00:00:00.000Z"] == 1 and days["2026-01-12T00:00:00.000Z"] == 1
    body = get(
        api,
        "timeseries",
        **{
            "from": "2026-01-05",
            "to": "2026-01-12",
            "interval": "day",
            "property": ["plan:pro"],
            "event_type": "page_view",
        },
    )
    assert [e for _, e, _ in points(body["series"][0])] == [2, 1, 0, 0, 0, 0, 0]  # e1, e8; e10
    body = get(
        api,
        "timeseries",
        **{"from": "2026-01-05", "to": "2026-01-12", "interval": "week", "user_id": "anon-1"},
    )
    assert points(body["series"][0]) == [("2026-01-05T00:00:00.000Z", 1, 1)]


def test_timeseries_group_by_top_and_other(api: httpx.Client) -> None:
    body = get(
        api,
        "timeseries",
        **{"from": "2026-01-05", "to": "2026-01-08", "interval": "day", "group_by": "event_type", "top": 1},
    )
    assert {s["name"]: points(s) for s in body["series"]} == {
        "page_view": [  # 6 page views in the range, the top type
            ("2026-01-05T00:00:00.000Z", 4, 4),
            ("2026-01-06T00:00:00.000Z", 2, 2),
            ("2026-01-07T00:00:00.000Z", 0, 0),
        ],
        "other": [  # e2 e3 e4 e6 e9 (alice, bob, carol); e15 e11 (alice, bob)
            ("2026-01-05T00:00:00.000Z", 5, 3),
            ("2026-01-06T00:00:00.000Z", 2, 2),
            ("2026-01-07T00:00:00.000Z", 0, 0),
        ],
    }
    assert [s["name"] for s in body["series"]] == ["page_view", "other"]
    body = get(
        api,
        "timeseries",
        **{"from": "2026-01-05", "to": "2026-01-06", "interval": "day", "group_by": "property:plan"},
    )
    assert {s["name"]: points(s)[0][1:] for s in body["series"]} == {"pro": (6, 2), "free": (2, 1)}


def test_breakdown(api: httpx.Client) -> None:
    body = get(api, "breakdown", dimension="channel", **{"from": "2026-01-05", "to": "2026-01-19"})
    assert body == {
        "dimension": "channel",
        "rows": [
            {"value": "web", "events": 10, "users": 2},  # alice and carol
            {"value": "email", "events": 3, "users": 1},
            {"value": "social", "events": 2, "users": 1},  # e12 once
            {"value": "ads", "events": 1, "users": 1},
        ],
    }
    body = get(api, "breakdown", dimension="channel", limit=2, **{"from": "2026-01-05", "to": "2026-01-19"})
    assert [r["value"] for r in body["rows"]] == ["web", "email"]
    body = get(api, "breakdown", dimension="property:plan", **{"from": "2026-01-05", "to": "2026-01-19"})
    assert body["rows"] == [
        {"value": "pro", "events": 7, "users": 2},
        {"value": "free", "events": 2, "users": 1},
    ]
    body = get(
        api,
        "breakdown",
        dimension="event_type",
        property="plan:pro",
        **{"from": "2026-01-05", "to": "2026-01-19"},
    )
    assert body["rows"] == [
        {"value": "page_view", "events": 3, "users": 2},
        {"value": "add_to_cart", "events": 2, "users": 2},
        {"value": "checkout_started", "events": 1, "users": 1},
        {"value": "purchase", "events": 1, "users": 1},
    ]
    # A number property reads as its JSON text; a filter matches it the same way.
    body = get(api, "breakdown", dimension="property:n", **{"from": "2026-01-05", "to": "2026-01-19"})
    assert body["rows"] == [{"value": "3", "events": 1, "users": 1}]
    body = get(
        api, "breakdown", dimension="campaign", property="n:3", **{"from": "2026-01-05", "to": "2026-01-19"}
    )
    assert body["rows"] == [{"value": "", "events": 1, "users": 1}]
    body = get(
        api,
        "breakdown",
        dimension="referrer",
        url=f"{SHOP}/pricing",
        **{"from": "2026-01-05", "to": "2026-01-19"},
    )
    assert body["rows"] == [{"value": "", "events": 2, "users": 2}]


def test_top_pages(api: httpx.Client) -> None:
    body = get(api, "top-pages", **{"from": "2026-01-05", "to": "2026-01-19"})
    assert body == {
        "rows": [
            {"url": f"{SHOP}/home", "views": 6, "visitors": 4},  # e1 e5 e8 e10 e13 e14
            {"url": f"{SHOP}/pricing", "views": 2, "visitors": 2},  # e7 e12
        ]
    }
    assert len(get(api, "top-pages", limit=1, **{"from": "2026-01-05", "to": "2026-01-19"})["rows"]) == 1


def test_active_users(api: httpx.Client) -> None:
    body = get(api, "active-users", date="2026-01-06")
    assert body == {"active_now": 1, "window_minutes": 5, "date": "2026-01-06", "dau": 3, "wau": 5, "mau": 5}
    # Nobody did anything on 2026-01-07: only the copy of dave's e12 lies there.
    body = get(api, "active-users", date="2026-01-07", window_minutes=30)
    assert body == {"active_now": 2, "window_minutes": 30, "date": "2026-01-07", "dau": 0, "wau": 5, "mau": 5}
    assert get(api, "active-users", date="2026-02-11")["mau"] == 0  # 01-13 .. 02-11: nobody
    assert (
        get(api, "active-users", date="2026-02-10")["mau"] == 2
    )  # 01-12 .. 02-10: alice (e13, e16) and dave (e14)


def test_sessions(api: httpx.Client) -> None:
    body = get(api, "sessions", **{"from": "2026-01-05", "to": "2026-01-19"})
    assert body == {
        "sessions": 8,  # s1..s8; bob's e11 has no session
        "active_sessions_per_user": 1.6,  # 8 sessions of 5 users
        # lengths 1200 (s1), 9000 (s2), 0 (s3: e7 once), 600 (s4), 90 (s5), 0 (s6: e12 once), 300 (s7), 0 (s8)
        "median_session_seconds": 195.0,  # (90 + 300) / 2
        "bounce_rate": 0.375,  # s3, s6, s8
        "pages_per_session": 1.0,  # 8 page views
    }


def test_funnel(api: httpx.Client) -> None:
    steps = ["page_view", "add_to_cart", "checkout_started", "purchase"]
    body = get(api, "funnel", steps=steps, **{"from": "2026-01-05", "to": "2026-01-19"})
    # alice: all four in 20 min; carol: page_view, add_to_cart 10 min later; bob: add_to_cart 2.5 h after his
    # page view (its copy at 13:00 is not counted); anon-1, dave: page views only.
    assert body == {
        "window_seconds": 3600,
        "steps": [
            {"step": "page_view", "users": 5, "conversion_from_first": 1.0, "conversion_from_previous": 1.0},
            {
                "step": "add_to_cart",
                "users": 2,
                "conversion_from_first": 0.4,
                "conversion_from_previous": 0.4,
            },
            {
                "step": "checkout_started",
                "users": 1,
                "conversion_from_first": 0.2,
                "conversion_from_previous": 0.5,
            },
            {"step": "purchase", "users": 1, "conversion_from_first": 0.2, "conversion_from_previous": 1.0},
        ],
    }
    body = get(
        api,
        "funnel",
        steps=["page_view", "add_to_cart"],
        window_seconds=60,
        **{"from": "2026-01-05", "to": "2026-01-19"},
    )
    assert [s["users"] for s in body["steps"]] == [5, 0]
    body = get(api, "funnel", steps=["purchase", "page_view"], **{"from": "2026-01-05", "to": "2026-01-19"})
    assert [s["users"] for s in body["steps"]] == [1, 0]  # alice's later page views are a day away


def test_retention(api: httpx.Client) -> None:
    body = get(api, "retention", period="day", periods=3, **{"from": "2026-01-05", "to": "2026-01-08"})
    assert body == {
        "period": "day",
        "cohorts": [
            {
                "cohort": "2026-01-05",
                "users": 4,
                "retained": [4, 2, 0],
                "rates": [1.0, 0.5, 0.0],
            },  # alice, bob on day 1
            # dave: the copy of e12 on 01-07 is not a return visit; only 2 periods have begun before 'to'
            {"cohort": "2026-01-06", "users": 1, "retained": [1, 0], "rates": [1.0, 0.0]},
        ],
    }
    body = get(api, "retention", period="week", periods=2, **{"from": "2026-01-05", "to": "2026-01-19"})
    assert body == {
        "period": "week",
        "cohorts": [
            {
                "cohort": "2026-01-05",
                "users": 5,
                "retained": [5, 2],
                "rates": [1.0, 0.4],
            },  # alice, dave in week 2
        ],
    }


BAD_REQUESTS = [
    ("breakdown", {"dimension": "color"}, "dimension", "expected one of event_type, url"),
    ("breakdown", {}, "dimension", "expected one of"),
    ("breakdown", {"dimension": "property:"}, "dimension", "property:KEY"),
    ("timeseries", {"interval": "fortnight"}, "interval", "expected auto, minute, hour, day, week"),
    ("timeseries", {"interval": "minute"}, "interval", "more than 2000"),  # 7 days of minutes
    ("timeseries", {"group_by": "color"}, "group_by", "expected one of"),
    ("timeseries", {"top": 0}, "top", ""),
    ("timeseries", {"from": "2026-01-08", "to": "2026-01-05"}, "from", "earlier than 'to'"),
    ("timeseries", {"from": "2026-01-05", "to": "2026-01-05"}, "from", "earlier than 'to'"),
    ("timeseries", {"from": "2020-01-01", "to": "2026-01-05"}, "from", "longer than 400 days"),
    ("timeseries", {"from": "soon"}, "from", "RFC 3339"),
    ("timeseries", {"property": "plan"}, "property", "expected key:value"),
    ("timeseries", {"property": ":pro"}, "property", "expected key:value"),
    ("timeseries", {"property": [f"k{i}:v" for i in range(11)]}, "property", "at most 10"),
    ("timeseries", {"event_type": "x" * 201}, "event_type", "longer than 200"),
    ("breakdown", {"dimension": "url", "limit": 0}, "limit", ""),
    ("breakdown", {"dimension": "url", "limit": 1001}, "limit", ""),
    ("top-pages", {"limit": 1001}, "limit", ""),
    ("funnel", {"steps": ["page_view"]}, "steps", "give 2 to 10 steps"),
    ("funnel", {}, "steps", "give 2 to 10 steps"),
    ("funnel", {"steps": [f"s{i}" for i in range(11)]}, "steps", "got 11"),
    ("funnel", {"steps": ["a", ""]}, "steps", "empty"),
    ("funnel", {"steps": ["a", "b"], "window_seconds": 0}, "window_seconds", ""),
    ("funnel", {"steps": ["a", "b"], "window_seconds": 90 * 86400 + 1}, "window_seconds", ""),
    ("retention", {"period": "month"}, "period", "day or week"),
    ("retention", {"period": "week", "periods": 53}, "periods", "1 to 52"),
    ("retention", {"periods": 0}, "periods", "1 to 90"),
    ("active-users", {"window_minutes": 0}, "window_minutes", ""),
    ("active-users", {"window_minutes": 1441}, "window_minutes", ""),
    ("active-users", {"date": "yesterday"}, "date", "YYYY-MM-DD"),
    ("active-users", {"date": "2026-02-30"}, "date", "YYYY-MM-DD"),
    ("active-users", {"date": "9999-12-31"}, "date", "YYYY-MM-DD"),
    ("sessions", {"to": "99999999999999999"}, "to", "2300"),
]


@pytest.mark.parametrize(("path", "params", "field", "message"), BAD_REQUESTS)
def test_bad_parameters_are_a_400_naming_the_parameter(
    api: httpx.Client, path: str, params: dict, field: str, message: str
) -> None:
    response = api.get(f"/analytics/{path}", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["status"], body["code"], body.get("field")) == (400, "invalid_parameter", field)
    assert message in body["message"]


PATHS = [
    "overview",
    "timeseries",
    "breakdown",
    "top-pages",
    "active-users",
    "sessions",
    "funnel",
    "retention",
]
PARAMETERS = [
    "from",
    "to",
    "interval",
    "event_type",
    "user_id",
    "url",
    "channel",
    "property",
    "group_by",
    "top",
    "dimension",
    "limit",
    "window_minutes",
    "date",
    "steps",
    "window_seconds",
    "period",
    "periods",
]
# Values near the rules as well as random text: valid names, numbers at the limits, times, key:value.
values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "event_type",
            "url",
            "property:plan",
            "property:",
            "day",
            "week",
            "auto",
            "minute",
            "page_view",
            "plan:pro",
            ":",
            "0",
            "-1",
            "1001",
            "99999999999999999999",
            "2026-01-05",
            "2299-12-31",
            "1",
            "",
        ]
    ),
    st.integers(min_value=-(2**63), max_value=2**64).map(str),
)


@settings(
    max_examples=int(os.environ.get("STREAMTRACK_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=st.sampled_from(PATHS), params=st.lists(st.tuples(st.sampled_from(PARAMETERS), values), max_size=6)
)
def test_no_query_gets_a_server_error(api: httpx.Client, path: str, params: list[tuple[str, str]]) -> None:
    response = api.get(f"/analytics/{path}", params=params)
    assert response.status_code in {200, 400}, response.text
    if response.status_code == 400:
        assert response.json()["field"] and response.json()["message"]


def test_every_endpoint_is_documented_with_an_example(api: httpx.Client) -> None:
    paths = api.get("/schema/openapi.json").json()["paths"]
    for name in (
        "overview",
        "timeseries",
        "breakdown",
        "top-pages",
        "active-users",
        "sessions",
        "funnel",
        "retention",
    ):
        operation = paths[f"/analytics/{name}"]["get"]
        ok = operation["responses"]["200"]["content"]["application/json"]
        assert ok["examples"], name
        assert "400" in operation["responses"], name


def nothing_found(body: dict) -> bool:
    """No event counted anywhere in an answer (the recent events lie outside every range below)."""
    if "series" in body:
        return all(p["events"] == p["users"] == 0 for series in body["series"] for p in series["points"])
    if "cohorts" in body:
        return body["cohorts"] == []
    if "steps" in body:
        return all(step["users"] == 0 for step in body["steps"])
    if "rows" in body:
        return body["rows"] == []
    return body["dau"] == body["wau"] == body["mau"] == 0


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("timeseries", {"to": "1"}),  # 1970: the default range starts before the epoch
        ("timeseries", {"from": "2299-12-01", "to": "2299-12-31T23:00:00Z", "interval": "day"}),
        ("retention", {"to": "1970-01-02", "period": "week", "periods": 52}),
        ("active-users", {"date": "2298-12-31"}),
        ("funnel", {"steps": ["a", "a"], "window_seconds": 90 * 86400}),
        ("breakdown", {"dimension": "property:\0'\\`{x:String}"}),
    ],
)
def test_odd_but_valid_parameters_answer_with_nothing_found(
    api: httpx.Client, path: str, params: dict
) -> None:
    assert nothing_found(get(api, path, **params))


def test_events_sent_again_through_the_pipeline_count_once(
    broker: LocalBroker, clean_store: EventStore, engine_path: Path
) -> None:
    """End to end: POST /batch, a client retry of half of it, the worker, then the analytics."""
    settings = load_settings(env=pipeline_env(broker, clean_store.database, engine_path.parent))
    running, stop = start_pipeline(settings, clean_store)
    try:
        sent = [
            {
                "event_type": "page_view",
                "user_id": f"p{i % 3}",
                "event_id": f"pipe-{i}",
                "timestamp": f"2025-06-02T10:{i:02d}:00Z",
                "url": f"{SHOP}/p{i % 2}",
            }
            for i in range(10)
        ]
        # One more event per user after the retry: the users' partitions keep order, so once these
        # are stored, the worker has handled the retried events before them.
        last = [
            {
                "event_type": "purchase",
                "user_id": f"p{u}",
                "event_id": f"last-{u}",
                "timestamp": "2025-06-02T11:00:00Z",
            }
            for u in range(3)
        ]
        with running.client() as client:
            for body in (sent, sent[:5], last):
                assert client.post("/batch", json=body).status_code == 202
            # The worker's count, not the rows: an insert's rows are visible a moment before the
            # rollups its materialized views feed (seen once: the ranking read no rollup rows).
            assert running.worker is not None
            running.wait_for(lambda: running.worker.stats.inserted == 13, what="the 13 events inserted")
            assert {e.event_id for e in clean_store.activities(event_type="purchase", limit=10)} == {
                "last-0", "last-1", "last-2"
            }
            body = get(
                client,
                "timeseries",
                **{
                    "from": "2025-06-02T10:00:00Z",
                    "to": "2025-06-02T12:00:00Z",
                    "interval": "hour",
                    "group_by": "event_type",
                },
            )
            assert {s["name"]: points(s) for s in body["series"]} == {
                "page_view": [("2025-06-02T10:00:00.000Z", 10, 3), ("2025-06-02T11:00:00.000Z", 0, 0)],
                "purchase": [("2025-06-02T10:00:00.000Z", 0, 0), ("2025-06-02T11:00:00.000Z", 3, 3)],
            }
            assert get(client, "overview")["total_events"] == 13
            pages = get(client, "top-pages", **{"from": "2025-06-02", "to": "2025-06-03"})["rows"]
            assert pages == [
                {"url": f"{SHOP}/p0", "views": 5, "visitors": 3},
                {"url": f"{SHOP}/p1", "views": 5, "visitors": 3},
            ]
    finally:
        stop()
