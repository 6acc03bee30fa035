"""The whole dashboard as a person sees it at 1280x800 and 1440x900: every panel shows data, nothing
overflows the window or its card, and the live feed is pushed (Server-Sent Events), polling only
when the stream is unavailable. Real pipeline (Apache Kafka, the worker, the dead-letter loader),
real Chromium; screenshots go to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from playwright.sync_api import BrowserContext, Page, Route

from streamtrack.config import load_settings
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.lifecycle import start_background
from streamtrack.store import EventStore
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline

DAY_MS = 86_400_000
SIZES = [(1280, 800), (1440, 900)]
PANELS = ["#timeseries-panel", "#pipeline-panel", "#breakdown-panel", "#top-pages-panel", "#feed-panel",
          "#funnel-panel", "#retention-panel", "#sessions-panel", "#dead-letters-panel"]


def history(run: str) -> list[dict]:
    """Users first seen over the last 4 days, some back on later days; sessions of 1 to 3 page views."""
    now = int(time.time() * 1000)
    today = now - now % DAY_MS
    events = []
    for user in range(12):
        first = today - (user % 4) * DAY_MS + 3_600_000
        for back in range(0, 1 + user % 3):  # returns on the following days
            at = first + back * DAY_MS
            if at > now - 60_000:
                continue
            session = f"{run}-{user}-{back}"
            for step in range(1 + (user + back) % 3):
                events.append({
                    "event_type": "page_view" if step < 2 else "purchase", "user_id": f"{run}-u{user}",
                    "session_id": session, "url": f"https://shop.test/p/{step}", "timestamp": at + step * 45_000,
                    "channel": ["ads", "organic", "email"][user % 3],
                })
        recent = now - (10 + user * 3) * 60_000  # and a visit within the last hour
        for step in range(1 + user % 3):
            events.append({
                "event_type": ["page_view", "add_to_cart", "purchase"][step], "user_id": f"{run}-u{user}",
                "session_id": f"{run}-{user}-now", "url": f"https://shop.test/p/{step}" if step == 0 else "",
                "timestamp": recent + step * 30_000, "channel": ["ads", "organic", "email"][user % 3],
            })
    return events


@pytest.fixture(scope="module")
def seeded(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[Pipeline]:
    env = pipeline_env(broker, store.database, engine_path.parent, STREAMTRACK_LIVE_HEARTBEAT_SECONDS="2")
    running, stop = start_pipeline(load_settings(env=env), store)
    background = start_background(running.settings, store)  # the dead-letter loader, as beside every worker
    events = history(uuid.uuid4().hex[:6])
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(running.settings.topic, value=b"not an event", key=b"garbage")  # one dead letter
    producer.flush(10)
    with running.client() as client:
        assert client.post("/batch", json=events).status_code == 202
        running.wait_for(lambda: len(client.get("/activities", params={"limit": 1000}).json()["data"]) == len(events),
                         what="the history in /activities")
        running.wait_for(lambda: client.get("/dead-letters/counts").json()["total"] == 1, what="the dead letter loaded")
    yield running
    background.stop()
    stop()


def open_dashboard(browser: BrowserContext, url: str, width: int, height: int) -> tuple[Page, list[str]]:
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": height})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.goto(f"{url}/dashboard")
    page.wait_for_function("() => document.body.dataset.refreshes >= 1")
    page.wait_for_selector("#live.ok")
    return page, problems


OVERFLOW = """() => {
    const width = document.documentElement.clientWidth;
    const found = [];
    if (document.documentElement.scrollWidth > width) found.push(`page: ${document.documentElement.scrollWidth} > ${width}`);
    for (const box of document.querySelectorAll('.card, .panel')) {
        const rect = box.getBoundingClientRect();
        const name = box.id || box.dataset.card;
        if (rect.right > width + 0.5 || rect.left < -0.5) found.push(`${name} outside the window: ${rect.left}..${rect.right}`);
        if (box.scrollWidth > box.clientWidth + 1) found.push(`${name} content ${box.scrollWidth} > ${box.clientWidth}`);
        for (const child of box.querySelectorAll('*')) {
            const inner = child.getBoundingClientRect();
            if (inner.width && (inner.right > rect.right + 1 || inner.left < rect.left - 1)) {
                found.push(`${name}: ${child.tagName}.${child.className} ${inner.left}..${inner.right} beyond ${rect.left}..${rect.right}`);
                break;
            }
        }
    }
    return found;
}"""


def answer_with(body: dict) -> Callable[[Route], None]:
    return lambda route: route.fulfill(json=body)


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_no_horizontal_overflow(seeded: Pipeline, browser: BrowserContext, artifacts: Path, width: int, height: int) -> None:
    page, problems = open_dashboard(browser, seeded.url, width, height)
    page.wait_for_selector("#retention tbody tr td.rate")
    page.screenshot(path=str(artifacts / f"dashboard-{width}x{height}.png"), full_page=True)
    assert page.evaluate(OVERFLOW) == []
    # The cards with the largest figures an instance shows (the API's answers, made large).
    big = {"/analytics/overview": {"total_events": 123_456_789, "unique_users": 12_345_678, "unique_sessions": 98_765_432,
                                   "first_event_at": None, "last_event_at": None, "events_last_5m": 1_234_567},
           "/analytics/active-users": {"active_now": 1_234_567, "window_minutes": 5, "date": "2026-01-31",
                                       "dau": 1_234_567, "wau": 7_654_321, "mau": 23_456_789}}
    for path, body in big.items():
        page.route(f"**{path}*", answer_with(body))
    page.evaluate("() => window.streamtrack.refresh()")
    page.wait_for_function("() => document.querySelector('[data-card=total_events] .value').textContent === '123,456,789'")
    page.screenshot(path=str(artifacts / f"dashboard-{width}x{height}-large.png"))
    assert page.evaluate(OVERFLOW) == []
    assert problems == []
    page.close()


def test_every_panel_shows_data(seeded: Pipeline, browser: BrowserContext) -> None:
    page, problems = open_dashboard(browser, seeded.url, 1440, 900)
    for card in page.locator(".cards .card").all():
        assert card.locator(".value").inner_text() not in ("", "–"), card.get_attribute("data-card")
    assert page.inner_text('[data-card="dau"] .value').count("/") == 2
    for canvas in ("#timeseries-chart", "#breakdown-chart", "#funnel-chart"):
        assert int(page.get_attribute(canvas, "data-points") or 0) > 0, canvas
    assert [row.split("\t") for row in page.locator("#top-pages tr").all_inner_texts()] == [["/p/0", "12", "12"]]
    assert page.locator("#feed li[data-event-id]").count() > 0
    # Retention: cohorts by first day, day 0 is 100 %.
    page.wait_for_selector("#retention tbody tr td.rate")
    rows = page.locator("#retention tbody tr").all()
    assert len(rows) == 4
    assert [row.locator("td").nth(2).inner_text() for row in rows] == ["100%"] * 4
    assert page.locator("#retention thead th").nth(2).inner_text() == "Day 0"
    # Sessions: the stats the analytics endpoint answers, formatted.
    for stat in ("sessions", "median_session_seconds", "bounce_rate", "pages_per_session"):
        assert page.inner_text(f'[data-session="{stat}"]') not in ("", "–"), stat
    assert page.inner_text('[data-session="bounce_rate"]').endswith("%")
    # Dead letters: the count by reason, the newest, and the list they come from.
    assert page.inner_text('[data-dead="total"]') == "1"
    assert page.inner_text("#dead-letter-reasons").startswith("undecodable")
    assert page.locator("#dead-letter-list li").count() == 1
    assert page.get_attribute("#dead-letters-panel a.all", "href") == "/dead-letters"
    for panel in PANELS:
        assert page.locator(f"{panel} .error").first.is_hidden(), panel
    assert problems == []
    page.close()


def test_the_live_feed_is_pushed_and_polls_only_without_the_stream(seeded: Pipeline, browser: BrowserContext) -> None:
    page, problems = open_dashboard(browser, seeded.url, 1440, 900)
    page.wait_for_selector('#feed-panel[data-mode="stream"]')
    page.evaluate("() => { window.notReloaded = true; }")
    fresh = {"event_type": "signup", "user_id": "pushed-user", "event_id": f"push-{uuid.uuid4().hex[:6]}"}
    with seeded.client() as client:
        assert client.post("/track", json=fresh).status_code == 202
    item = page.wait_for_selector(f'#feed li[data-event-id="{fresh["event_id"]}"]')
    assert item.get_attribute("data-source") == "stream"
    assert "signup" in item.inner_text() and page.evaluate("() => window.notReloaded") is True
    assert problems == []
    page.close()

    # Without the stream (a proxy that refuses it, say), the feed polls /activities.
    page = browser.new_page()
    page.set_viewport_size({"width": 1440, "height": 900})
    page.route("**/activities/stream*", lambda route: route.abort())
    page.goto(f"{seeded.url}/dashboard")
    page.wait_for_selector('#feed-panel[data-mode="poll"]')
    polled = {"event_type": "signup", "user_id": "polled-user", "event_id": f"poll-{uuid.uuid4().hex[:6]}"}
    with seeded.client() as client:
        assert client.post("/track", json=polled).status_code == 202
    item = page.wait_for_selector(f'#feed li[data-event-id="{polled["event_id"]}"]', timeout=60_000)
    assert item.get_attribute("data-source") == "poll"
    page.close()
