"""The dashboard with auth on: it asks once for a read key, keeps it for the tab, and shows that project only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Dialog

from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import load_settings
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from streamtrack.store.keys import add_key, create_project, migrate_keys
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline


@pytest.fixture(scope="module")
def secured(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[tuple[Pipeline, str]]:
    """Auth on; project 'mine' with 2 events, project 'theirs' with 5; yields the pipeline and mine's read key."""
    settings = load_settings(env=pipeline_env(broker, store.database, engine_path.parent, STREAMTRACK_AUTH="on"))
    running, stop = start_pipeline(settings, store)
    migrate_keys(store)
    read_key = ""
    now = int(time.time() * 1000)
    for project, count in (("mine", 2), ("theirs", 5)):
        create_project(store, project, project)
        write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
        add_key(store, project, write)
        add_key(store, project, read)
        read_key = read.secret if project == "mine" else read_key
        events = [{"event_type": "page_view", "user_id": f"{project}-{i}", "url": f"https://{project}.test/",
                   "timestamp": now - 1000 * i} for i in range(count)]
        response = httpx.post(f"{running.url}/batch", json=events, headers={"Authorization": f"Bearer {write.secret}"})
        assert response.status_code == 202, response.text
    running.wait_for(lambda: store.stats().rows == 7, what="both projects' events")
    yield running, read_key
    stop()


def test_dashboard_asks_for_a_read_key_once_and_shows_that_project(
    secured: tuple[Pipeline, str], browser: BrowserContext
) -> None:
    pipeline, read_key = secured
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept("str_not-a-key" if len(asked) == 1 else read_key)  # a typo first, then the right key

    page = browser.new_page()
    page.on("dialog", answer)
    page.goto(f"{pipeline.url}/dashboard")
    page.wait_for_function("() => document.querySelector('[data-card=total_events] .value').textContent === '2'")
    assert len(asked) == 2  # one dialog for all panels; asked again after the wrong key
    assert "no key" in asked[0] and "unknown or revoked" in asked[1]
    assert page.inner_text('[data-card="unique_users"] .value') == "2"  # project 'mine' only, not 'theirs'
    assert page.evaluate("() => sessionStorage.getItem('streamtrack.readKey')") == read_key
    page.reload()  # the tab keeps the key: no more questions
    page.wait_for_function("() => document.querySelector('[data-card=total_events] .value').textContent === '2'")
    assert len(asked) == 2
    page.close()
