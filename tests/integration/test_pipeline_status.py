"""GET /pipeline/status reports what the pipeline really does: ingest, lag, dead letters, health.

Against Apache Kafka, whose high watermarks are exact however the records were batched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streamtrack.api.pipeline import StatusReader
from streamtrack.config import Settings, load_settings
from streamtrack.kafka import client_config
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore, open_store
from streamtrack.store.ingest_rate import WINDOW_S
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline


def status(pipeline: Pipeline) -> dict:
    with pipeline.client() as client:
        response = client.get("/pipeline/status")
    assert response.status_code == 200, response.text
    return response.json()


def test_idle_pipeline_is_healthy_with_nothing_to_report(pipeline: Pipeline) -> None:
    assert status(pipeline) == {
        "ingest_rate_per_s": 0.0, "consumer_lag": 0, "dead_letters": 0,
        "broker_ok": True, "store_ok": True, "errors": {}, "archive_lag": None,  # the archive is off
    }


def test_ingest_rate_counts_each_event_received_in_the_last_minute_once(pipeline: Pipeline) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    events = [{"event_type": "page_view", "user_id": user, "event_id": f"{user}-{i}"} for i in range(30)]
    with pipeline.client() as client:
        assert client.post("/batch", json=events).status_code == 202
        assert client.post("/batch", json=events[:10]).status_code == 202  # retries: stored once
    pipeline.wait_for(lambda: status(pipeline)["ingest_rate_per_s"] == 30 / WINDOW_S, what="30 events in the rate")
    pipeline.wait_for(lambda: status(pipeline)["consumer_lag"] == 0, what="the worker to commit")


def test_dead_letters_are_counted_from_the_dead_letter_topic(pipeline: Pipeline) -> None:
    producer = Producer(client_config(pipeline.settings, **{"linger.ms": 50}))
    before = status(pipeline)["dead_letters"]
    for poison in [b"not json", b'{"hello": "world"}', b"\xff"]:  # one batch: one key, one partition
        producer.produce(pipeline.settings.topic, value=poison, key=b"poison")
    assert producer.flush(10) == 0
    pipeline.wait_for(lambda: status(pipeline)["dead_letters"] == before + 3, what="3 dead letters")
    assert status(pipeline)["broker_ok"] is True


@pytest.fixture
def workerless(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[Pipeline]:
    """API only, on topics and a group of its own: whatever is produced stays as lag."""
    settings = load_settings(env=pipeline_env(broker, store.database, engine_path.parent))
    running, stop = start_pipeline(settings, store, with_worker=False)
    yield running
    stop()


def test_consumer_lag_counts_records_no_worker_has_committed(workerless: Pipeline) -> None:
    with workerless.client() as client:
        events = [{"event_type": "click", "user_id": f"lag-{i}"} for i in range(5)]
        assert client.post("/batch", json=events).json()["accepted"] == 5
    workerless.wait_for(lambda: status(workerless)["consumer_lag"] == 5, what="a lag of 5")
    assert status(workerless)["broker_ok"] is True


def test_unreachable_sources_are_reported_not_raised(store_settings: Settings, engine_path: Path) -> None:
    """No broker on the port and a closed store: 'not ok' with the reasons, numbers null."""
    settings = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "STREAMTRACK_DATA_DIR": str(engine_path.parent)})
    closed = open_store(store_settings)
    closed.close()
    report = asyncio.run(StatusReader(settings, closed).read())
    assert (report.broker_ok, report.store_ok) == (False, False)
    assert (report.ingest_rate_per_s, report.consumer_lag, report.dead_letters) == (None, None, None)
    assert "closed" in report.errors["store"]
    assert report.errors["broker"]
