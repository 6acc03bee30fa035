"""Seed 003's paths: `POST /events` and `POST /events/bulk` are /track and /batch; `/swagger` is the docs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import load_settings
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from streamtrack.store.keys import add_key, create_project, migrate_keys
from streamtrack.telemetry.metrics import HTTP_REQUESTS
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline


@pytest.fixture(scope="module")
def keyed(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[tuple[Pipeline, str, str]]:
    env = pipeline_env(broker, store.database, engine_path.parent, STREAMTRACK_AUTH="on",
                       STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0", STREAMTRACK_RATE_LIMIT_KEY_PER_S="0")
    running, stop = start_pipeline(load_settings(env=env), store, with_worker=False)
    migrate_keys(store)
    project = f"alias-{uuid.uuid4().hex[:6]}"
    create_project(store, project, "aliases")
    write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
    add_key(store, project, write)
    add_key(store, project, read)
    yield running, write.secret, read.secret
    stop()


def test_events_and_bulk_answer_as_track_and_batch(keyed: tuple[Pipeline, str, str]) -> None:
    pipeline, write, _ = keyed
    tracked = HTTP_REQUESTS.labels("POST", "/track", "202")
    before = tracked._value.get()
    with pipeline.client(headers={"Authorization": f"Bearer {write}"}) as client:
        one = client.post("/events", json={"event": "signup", "userId": "seed-3", "event_id": "e-1"})
        assert (one.status_code, one.json()) == (202, {"event_id": "e-1"})
        bulk = client.post("/events/bulk", json={"events": [{"event_type": "a", "user_id": "u"}, {"user_id": "u"}]})
        assert bulk.status_code == 202
        assert (bulk.json()["accepted"], bulk.json()["rejected"]) == (1, 1)
        assert bulk.json()["results"][1]["field"] == "event_type"
        bad = client.post("/events", content=b"{", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["code"] == "malformed_json"
    assert tracked._value.get() == before + 1  # counted as /track: the alias is that route


def test_aliases_take_the_keys_of_ingestion(keyed: tuple[Pipeline, str, str]) -> None:
    pipeline, _, read = keyed
    with pipeline.client() as client:
        for path in ("/events", "/events/bulk"):
            assert client.post(path, json={"event_type": "x", "user_id": "u"}).status_code == 401
            wrong = client.post(path, json={"event_type": "x", "user_id": "u"}, headers={"Authorization": f"Bearer {read}"})
            assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_key_kind"
        preflight = client.options("/events", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204  # CORS as on /track (STREAMTRACK_CORS_ORIGINS=*)


def test_swagger_serves_the_api_docs(keyed: tuple[Pipeline, str, str]) -> None:
    pipeline, _, _ = keyed
    page = httpx.get(f"{pipeline.url}/swagger")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == httpx.get(f"{pipeline.url}/schema/swagger").text
    assert "script-src 'self'" in page.headers["content-security-policy"]
