"""The dashboard as a person uses it: real pipeline, real data, real Chromium.

A known set of events goes in over HTTP; once stored, the page must show exactly those
numbers in its cards, charts, table and funnel, list an event posted afterwards without a
reload, show the pipeline's health, and log no console error. The run saves a screenshot
(tests/artifacts/dashboard.png; docs/dashboard.png is a committed copy).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page

from streamtrack.api import create_app
from streamtrack.api.loadgen_control import loadgen_router
from streamtrack.api.server import BackgroundServer
from streamtrack.config import load_settings
from streamtrack.dev import _print_banner
from streamtrack.loadgen.control import LoadgenControl
from tests.fixtures.pipeline import Pipeline


def test_dev_banner_lists_the_dashboard_first(capsys: pytest.CaptureFixture[str]) -> None:
    _print_banner(load_settings(env={}))
    urls = re.findall(r"http://\S+", capsys.readouterr().out)
    assert urls[0] == "http://127.0.0.1:8000/dashboard"


def journey(run: str) -> list[dict]:
    """3 users, 4 sessions, 10 distinct events; the funnel page_view → purchase is walked 3, 2, 1, 1 deep."""
    steps = [
        ("u1", "a", "page_view", "/pricing"), ("u1", "a", "page_view", "/pricing"),
        ("u1", "a", "add_to_cart", ""), ("u1", "a", "checkout_started", ""), ("u1", "a", "purchase", ""),
        ("u2", "b", "page_view", "/pricing"), ("u2", "b", "add_to_cart", ""),
        ("u3", "c1", "page_view", "/home"), ("u3", "c1", "click", ""), ("u3", "c2", "page_view", "/home"),
    ]
    start_ms = int(time.time() * 1000) - 110_000  # spread over ~2 minutes, well within "last 5 min"
    return [
        {
            "event_id": f"{run}-{i}", "event_type": kind, "user_id": f"{run}-{user}", "session_id": f"{run}-{session}",
            "url": f"https://shop.test{path}" if path else "", "channel": "organic" if user != "u2" else "ads",
            "timestamp": start_ms + i * 10_000,
        }
        for i, (user, session, kind, path) in enumerate(steps)
    ]


@pytest.fixture(scope="module")
def stored(pipeline: Pipeline) -> list[dict]:
    """The journey, posted (with one client retry, stored once) and visible in /activities."""
    events = journey(uuid.uuid4().hex[:6])
    with pipeline.client() as client:
        assert client.post("/batch", json=events).status_code == 202
        assert client.post("/track", json=events[3]).status_code == 202  # a retry: same event_id
        pipeline.wait_for(
            lambda: len(client.get("/activities", params={"limit": 100}).json()["data"]) == len(events),
            what="the journey in /activities",
        )
    return events


def test_root_redirects_and_assets_ship_with_the_package(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        root = client.get("/")
        assert root.status_code in (301, 302, 307, 308) and root.headers["location"] == "/dashboard"
        page = client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert 'data-loadgen="false"' in page.text  # no /dev/loadgen outside dev mode: no buttons
        for asset in ("dashboard.js", "api.js", "charts.js", "dashboard.css", "vendor/chart.umd.min.js"):
            response = client.get(f"/dashboard/assets/{asset}")
            assert response.status_code == 200 and len(response.content) > 500, asset
        licence = client.get("/dashboard/assets/vendor/chart.js-LICENSE.md")
        assert licence.status_code == 200 and "MIT" in licence.text
        assert "/dashboard" not in client.get("/schema/openapi.json").json()["paths"]


def chart_data(page: Page, canvas: str) -> dict[str, list]:
    """The data Chart.js drew on a canvas: labels and each dataset's values, by dataset label."""
    return page.evaluate(
        """(selector) => {
            const chart = Chart.getChart(document.querySelector(selector));
            const data = { labels: chart.data.labels };
            for (const set of chart.data.datasets) data[set.label] = set.data;
            return data;
        }""",
        canvas,
    )


def test_dashboard_shows_the_data_and_updates_live(
    pipeline: Pipeline, stored: list[dict], browser: BrowserContext, artifacts: Path
) -> None:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(_describe(message)) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    page.goto(f"{pipeline.url}/")  # the root redirects to the dashboard
    assert page.url == f"{pipeline.url}/dashboard"
    page.wait_for_function("() => document.body.dataset.refreshes >= 1")
    page.wait_for_selector("#live.ok")

    # Overview cards: exact numbers (the retried event counted once).
    card = lambda name: page.inner_text(f'[data-card="{name}"] .value')  # noqa: E731
    assert (card("total_events"), card("unique_users"), card("unique_sessions")) == ("10", "3", "4")
    assert card("events_last_5m") == "10"
    assert card("active_now") == "3"

    # Charts drew exactly the stored data.
    series = chart_data(page, "#timeseries-chart")
    assert sum(series["Events"]) == 10 and max(series["Users"]) >= 1
    assert int(page.get_attribute("#timeseries-chart", "data-points")) > 0
    breakdown = chart_data(page, "#breakdown-chart")
    assert dict(zip(breakdown["labels"], breakdown["Events"], strict=True)) == {
        "page_view": 5, "add_to_cart": 2, "checkout_started": 1, "purchase": 1, "click": 1,
    }
    funnel = chart_data(page, "#funnel-chart")
    assert funnel["labels"] == ["page_view", "add_to_cart", "checkout_started", "purchase"]
    assert funnel["Users"] == [3, 2, 1, 1]

    # Top pages, most viewed first (paths shown, as every page is on one host; the full URL in the title).
    rows = page.locator("#top-pages tr").all_inner_texts()
    assert [row.split("\t") for row in rows] == [["/pricing", "3", "2"], ["/home", "2", "1"]]
    assert page.get_attribute("#top-pages tr:first-child td", "title") == "https://shop.test/pricing"

    # The range and interval pickers re-query and redraw.
    page.select_option("#range", "900")
    page.select_option("#interval", "minute")
    page.wait_for_function(
        "() => { const d = document.querySelector('#timeseries-chart').dataset; return d.interval === 'minute' && d.range === '900'; }"
    )
    series = chart_data(page, "#timeseries-chart")
    assert sum(series["Events"]) == 10 and len(series["labels"]) >= 15
    page.select_option("#group-by", "event_type")
    page.wait_for_function("() => document.querySelector('#timeseries-chart').dataset.groupBy === 'event_type'")
    split = chart_data(page, "#timeseries-chart")
    assert sum(split["page_view"]) == 5 and sum(split["add_to_cart"]) == 2
    page.select_option("#dimension", "url")
    page.wait_for_function("() => document.querySelector('#breakdown-chart').dataset.dimension === 'url'")
    by_url = chart_data(page, "#breakdown-chart")
    by_url = dict(zip(by_url["labels"], by_url["Events"], strict=True))
    assert (by_url["https://shop.test/pricing"], by_url["https://shop.test/home"]) == (3, 2)
    page.select_option("#dimension", "event_type")
    page.select_option("#group-by", "")

    # Pipeline health from /pipeline/status.
    page.wait_for_function("() => document.querySelector('[data-stat=consumer_lag]').textContent === '0'")
    assert page.inner_text('[data-health="broker_ok"]') == "ok"
    assert page.inner_text('[data-health="store_ok"]') == "ok"
    assert page.inner_text('[data-stat="dead_letters"]') == "0"
    assert float(page.inner_text('[data-stat="ingest_rate_per_s"]')) > 0

    # A new event shows up in the live feed without a reload.
    page.evaluate("() => { window.notReloaded = true; }")
    fresh = {"event_type": "signup", "user_id": "live-feed-user", "event_id": f"live-{uuid.uuid4().hex[:6]}"}
    with pipeline.client() as client:
        assert client.post("/track", json=fresh).status_code == 202
    page.wait_for_selector(f'#feed li[data-event-id="{fresh["event_id"]}"]')
    assert page.evaluate("() => window.notReloaded") is True
    assert "signup" in page.inner_text(f'#feed li[data-event-id="{fresh["event_id"]}"]')
    page.wait_for_function("() => document.querySelector('[data-card=total_events] .value').textContent === '11'")

    page.wait_for_selector("#live.ok")
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    assert problems == []
    page.close()


def _describe(message: ConsoleMessage) -> str:
    return f"console error: {message.text} at {message.location.get('url', '')}"


@pytest.fixture
def dev_api(pipeline: Pipeline) -> Iterator[str]:
    """The API as `streamtrack dev` serves it (with /dev/loadgen), on this module's pipeline."""
    control = LoadgenControl()
    server = BackgroundServer(create_app(pipeline.services, extra_handlers=[loadgen_router(control)])).start()
    control.url = server.url
    yield server.url
    control.stop()
    server.stop()


def test_load_generator_buttons_start_and_stop_it_in_dev_mode(dev_api: str, browser: BrowserContext) -> None:
    """Last in the module: the generated events would change the numbers checked above."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(_describe(message)) if message.type == "error" else None)
    page.goto(f"{dev_api}/dashboard")
    page.get_by_role("button", name="100/s", exact=True).click()
    page.wait_for_function("() => document.querySelector('#loadgen-status').dataset.running === 'true'")
    page.wait_for_function("() => / [1-9][0-9,]* accepted/.test(document.querySelector('#loadgen-status').textContent)")
    assert "running at 100/s" in page.inner_text("#loadgen-status")
    assert "active" in page.get_attribute('#loadgen [data-rate="100"]', "class")
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("() => document.querySelector('#loadgen-status').dataset.running === 'false'")
    with httpx.Client(base_url=dev_api) as client:
        final = client.get("/dev/loadgen").json()
    assert final["running"] is False and final["accepted"] > 0 and final["errors"] == 0
    assert problems == []
    page.close()
