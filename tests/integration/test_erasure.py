"""Erasure that erases: the user's linked ids go too, and events still in Kafka when it ran never land.

Through the real pipeline: the API over HTTP, the session's broker, a worker started only
after the erasure (its events were in flight), then the stored rows and the analytics.
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

from streamtrack.config import load_settings
from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore
from streamtrack.store.privacy import erase_user, linked_ids
from streamtrack.timestamps import now_ms
from streamtrack.worker import Worker
from streamtrack.worker.sink import Sink
from tests.fixtures.pipeline import pipeline_env, start_pipeline


def stored_users(store: EventStore) -> list[tuple[str, str]]:
    return sorted(store.backend.query(f"SELECT DISTINCT user_id, anonymous_id FROM `{store.database}`.events"))


def test_linked_ids_and_in_flight_events_are_erased(broker, clean_store: EventStore, engine_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(env=pipeline_env(broker, clean_store.database, engine_path.parent))
    running, stop = start_pipeline(settings, clean_store, with_worker=True)
    try:
        with running.client() as client:
            # A visitor browses anonymously, signs up (identify joins the two ids), and buys.
            assert client.post("/track", json={"event_type": "page_view", "anonymous_id": "anon-7"}).status_code == 202
            identify = {"userId": "ann", "anonymousId": "anon-7", "traits": {"email": "ann@x.test"}}
            segment = {"Authorization": "Basic " + base64.b64encode(b"any-write-key:").decode()}  # auth is off
            assert client.post("/v1/identify", json=identify, headers=segment).status_code == 200
            assert client.post("/track", json={"event_type": "purchase", "user_id": "ann"}).status_code == 202
            assert client.post("/track", json={"event_type": "page_view", "user_id": "bob"}).status_code == 202
            running.wait_for(lambda: clean_store.stats().rows == 4, what="the four events")
            assert linked_ids(clean_store, DEFAULT_PROJECT, "ann") == ["ann", "anon-7"]
    finally:
        stop()
    # Events of ann's ids accepted while no worker runs: in flight when the erasure happens.
    running, stop = start_pipeline(settings, clean_store, with_worker=False)
    try:
        with running.client() as client:
            for body in ({"event_type": "click", "user_id": "ann"}, {"event_type": "click", "anonymous_id": "anon-7"},
                         {"event_type": "click", "user_id": "bob"}):
                assert client.post("/track", json=body).status_code == 202
            response = client.delete("/users/ann/events")
            assert response.status_code == 200
            assert response.json()["deleted_rows"] == 3  # anon-7's page view and identify, ann's purchase
            assert client.get("/users/ann").status_code == 404
            assert stored_users(clean_store) == [("bob", "")]
    finally:
        stop()
    worker = Worker(settings, clean_store)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while worker.stats.inserted + worker.stats.duplicates < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = clean_store.backend.query(f"SELECT user_id, event_type FROM `{clean_store.database}`.events ORDER BY event_type")
        assert rows == [("bob", "click"), ("bob", "page_view")]  # ann's in-flight clicks never landed
    finally:
        worker.stop()
        thread.join(30)


def test_an_erasure_that_races_an_insert_is_undone_after_it(clean_store: EventStore) -> None:
    """The tombstone lands between the worker's check and its insert: the second check deletes."""
    sink = Sink(clean_store, cache_events=1000, window_ms=60_000)
    sink.warm()
    received = now_ms() - 1000
    event = Event(event_id="e1", event_type="click", timestamp=received, received_at=received, user_id="cy")
    real_insert = clean_store.insert

    def insert_after_an_erasure(events, dedup_token=None, *, batch=0):  # type: ignore[no-untyped-def]
        erase_user(clean_store, DEFAULT_PROJECT, "cy")  # nothing stored yet: only the tombstone matters
        return real_insert(events, dedup_token, batch=batch)

    clean_store.insert = insert_after_an_erasure  # type: ignore[method-assign]
    try:
        assert [e.event_id for e in sink.write([event], dedup_token=None, batch_id=1)] == ["e1"]
    finally:
        clean_store.insert = real_insert  # type: ignore[method-assign]
    assert clean_store.stats().rows == 0
    # An event of the same id received after the erasure is new data, and is kept.
    later = Event(event_id="e2", event_type="click", timestamp=now_ms() + 5, received_at=now_ms() + 5, user_id="cy")
    sink.write([later], dedup_token=None, batch_id=2)
    assert clean_store.stats().rows == 1


def test_a_shared_device_does_not_erase_the_other_user(clean_store: EventStore) -> None:
    """Two users signed in on one device (one anonymous id): erasing one takes its own events and
    the device's anonymous ones, never the other user's identified events."""
    sink = Sink(clean_store, cache_events=1000, window_ms=60_000)
    sink.warm()
    at = now_ms() - 60_000

    def event(event_id: str, user: str = "") -> Event:
        return Event(event_id=event_id, event_type="click", timestamp=at, received_at=at, user_id=user,
                     anonymous_id="device-1")

    sink.write([event("before-signup"), event("ann-1", "ann"), event("bob-1", "bob")], dedup_token=None, batch_id=1)
    assert linked_ids(clean_store, DEFAULT_PROJECT, "ann") == ["ann", "device-1"]
    assert erase_user(clean_store, DEFAULT_PROJECT, "ann") == 2  # ann's, and the device's anonymous one
    rows = clean_store.backend.query(f"SELECT event_id FROM `{clean_store.database}`.events")
    assert rows == [("bob-1",)]
    # In flight: bob's identified event on the device is kept, the device's anonymous one is not.
    kept = sink.write([event("bob-2", "bob"), event("anon-2")], dedup_token=None, batch_id=2)
    assert [e.event_id for e in kept] == ["bob-2"]
