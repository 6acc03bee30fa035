"""The load generator's traffic model: deterministic, valid, and shaped like a real shop.

The model is seeded, so every number below is a property of a fixed stream of events,
not a flaky sample: the checks are ranges around the configured shares because they
describe what the traffic should look like, not one run's exact counts.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

from streamtrack.errors import InvalidEvent
from streamtrack.loadgen.traffic import EVENT_TYPES, FUNNEL, PRODUCTS, SITE, Traffic, TrafficShape
from streamtrack.normalize import Limits, RequestContext, normalize
from streamtrack.timestamps import now_ms

N = 60_000
NOW = now_ms()


def fixed_clock() -> int:
    return NOW


@pytest.fixture(scope="module")
def stream() -> list[dict[str, Any]]:
    return Traffic(seed=42, users=1000, run_id="t", clock=fixed_clock).take(N)


@pytest.fixture(scope="module")
def sessions(stream: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Sessions that started in the first half of the stream: all of them ended before its end."""
    by_session: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    started_early: set[str] = set()
    for position, event in enumerate(stream):
        if position < N // 2 and event["session_id"] not in by_session:
            started_early.add(event["session_id"])
        by_session[event["session_id"]].append(event)
    return {sid: events for sid, events in by_session.items() if sid in started_early}


def who(event: dict[str, Any]) -> str:
    return event.get("user_id") or event["anonymous_id"]


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    first = Traffic(seed=7, users=300, run_id="r", clock=fixed_clock).take(3000)
    assert Traffic(seed=7, users=300, run_id="r", clock=fixed_clock).take(3000) == first
    other = Traffic(seed=8, users=300, run_id="r", clock=fixed_clock).take(3000)
    assert [e["event_type"] for e in other] != [e["event_type"] for e in first]


def test_event_ids_are_unique_and_carry_the_run_id(stream: list[dict[str, Any]]) -> None:
    ids = [e["event_id"] for e in stream]
    assert len(set(ids)) == N
    assert ids[:3] == ["t-1", "t-2", "t-3"]
    assert {e["event_id"] for e in Traffic(seed=42, run_id="other").take(100)}.isdisjoint(ids)


def test_every_event_is_valid_and_keeps_its_fields_through_normalize(stream: list[dict[str, Any]]) -> None:
    context, limits = RequestContext(received_at=NOW), Limits()
    for raw in stream[:5000]:
        event = normalize(raw, context, limits)
        assert event.event_id == raw["event_id"] and event.timestamp == raw["timestamp"]
        assert event.event_type in EVENT_TYPES
        assert event.session_id == raw["session_id"] and event.channel == raw["channel"]
        assert event.url.startswith(SITE + "/")
        assert (event.user_id or event.anonymous_id) == who(raw)
        assert event.properties == raw["properties"]
    with pytest.raises(InvalidEvent):  # the check above would notice an invalid event
        normalize({**stream[0], "user_id": None, "anonymous_id": None}, context, limits)


def test_all_event_types_occur_with_page_views_the_most_common(stream: list[dict[str, Any]]) -> None:
    counts = collections.Counter(e["event_type"] for e in stream)
    assert set(counts) == set(EVENT_TYPES)
    assert counts.most_common(1)[0][0] == "page_view"
    assert counts["page_view"] > counts["click"] > counts["scroll"] > counts["add_to_cart"]
    assert counts["add_to_cart"] > counts["checkout_started"] > counts["purchase"] > 0


def test_sessions_have_one_visitor_one_channel_and_1_to_30_events(sessions: dict[str, list[dict[str, Any]]]) -> None:
    assert len(sessions) > 2000
    for events in sessions.values():
        assert 1 <= len(events) <= 30
        assert len({who(e) for e in events}) == 1
        assert len({e["channel"] for e in events}) == 1
        assert events[0]["event_type"] == "page_view"  # a visit starts by landing on a page
    lengths = collections.Counter(len(events) for events in sessions.values())
    bounce_share = lengths[1] / len(sessions)
    assert 0.30 < bounce_share < 0.45  # configured 0.35 (plus short visits that end early)
    assert max(lengths) == 30


def test_sessions_last_like_visits_and_never_end_in_the_future(sessions: dict[str, list[dict[str, Any]]]) -> None:
    durations = []
    for events in sessions.values():
        times = [e["timestamp"] for e in events]
        assert times == sorted(times)
        assert times[-1] == NOW  # dated to end when it was generated: nothing in the future
        if len(events) > 1:
            durations.append((times[-1] - times[0]) / 1000)
    durations.sort()
    median = durations[len(durations) // 2]
    assert 60 < median < 600  # minutes, not the milliseconds it takes to send them
    assert durations[0] >= 1 and durations[-1] < 3600


def test_a_visitor_never_has_two_sessions_at_once(stream: list[dict[str, Any]]) -> None:
    spans: dict[str, list[int]] = {}
    for position, event in enumerate(stream):
        spans.setdefault(event["session_id"], [position, position])[1] = position
    by_visitor: dict[str, list[list[int]]] = collections.defaultdict(list)
    for span in spans.values():
        by_visitor[who(stream[span[0]])].append(span)
    for visits in by_visitor.values():
        visits.sort()
        assert all(earlier[1] < later[0] for earlier, later in zip(visits, visits[1:], strict=False))


def test_users_spread_some_heavy_many_occasional(stream: list[dict[str, Any]]) -> None:
    per_visitor = collections.Counter(who(e) for e in stream)
    assert 300 < len(per_visitor) <= 2000  # 1000 users, each logged in or anonymous in a visit
    top = per_visitor.most_common(10)
    assert top[0][1] > 10 * (N / len(per_visitor))  # the heaviest user is far above average


def test_funnel_steps_keep_their_order_within_a_session(sessions: dict[str, list[dict[str, Any]]]) -> None:
    for events in sessions.values():
        steps = [e["event_type"] for e in events if e["event_type"] in FUNNEL[1:]]
        assert steps == list(FUNNEL[1 : 1 + len(steps)])
        if steps:
            cart = next(i for i, e in enumerate(events) if e["event_type"] == "add_to_cart")
            product = events[cart]["properties"]["product_id"]
            assert events[cart - 1]["event_type"] == "page_view"
            assert events[cart - 1]["url"] == f"{SITE}/products/{product}"


def test_some_funnels_complete_most_are_abandoned(sessions: dict[str, list[dict[str, Any]]]) -> None:
    shape = TrafficShape()
    carts = [events for events in sessions.values() if any(e["event_type"] == "add_to_cart" for e in events)]
    completed = [events for events in carts if events[-1]["event_type"] == "purchase"]
    share = len(completed) / len(carts)
    expected = shape.checkout_share * shape.purchase_share  # 0.3
    assert len(carts) > 500
    assert expected - 0.05 < share < expected + 0.05
    visits = [events for events in sessions.values() if len(events) > 1]
    assert 0.35 < len(carts) / len(visits) < 0.55  # shopper_share 0.45 of the visits that did not bounce


def test_purchases_carry_product_price_and_revenue(stream: list[dict[str, Any]]) -> None:
    purchases = [e["properties"] for e in stream if e["event_type"] == "purchase"]
    assert purchases
    for p in purchases:
        assert PRODUCTS[p["product_id"]] == p["price"]
        assert p["revenue"] == round(p["price"] * p["quantity"], 2)
        assert p["currency"] == "EUR"
    assert len({p["order_id"] for p in purchases}) == len(purchases)


def test_marketing_fields_come_from_the_channel(stream: list[dict[str, Any]]) -> None:
    channels = collections.Counter(e["channel"] for e in stream)
    assert set(channels) == {"direct", "organic_search", "paid_search", "social", "email", "referral"}
    assert {e["campaign_id"] for e in stream if "campaign_id" in e} >= {"spring-sale", "newsletter-42"}
    assert not any("campaign_id" in e for e in stream if e["channel"] in ("direct", "organic_search"))
    assert any(e.get("referrer", "").startswith("https://www.google.com") for e in stream)


def test_few_users_still_work() -> None:
    events = Traffic(seed=1, users=1, run_id="one").take(200)
    assert {who(e) for e in events} <= {"user-00000", "anon-00000"}
    with pytest.raises(ValueError):
        Traffic(seed=1, users=0)
