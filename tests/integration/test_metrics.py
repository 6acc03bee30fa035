"""`/metrics` counts what happened: after known traffic each counter moved by exactly that much."""

from __future__ import annotations

import socket
import struct
import uuid

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streamtrack.kafka import client_config
from streamtrack.telemetry.metrics import MetricsServer
from tests.fixtures.pipeline import Pipeline

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_counters_move_by_the_traffic_sent(pipeline: Pipeline) -> None:
    user = f"metrics-{uuid.uuid4().hex[:6]}"
    with pipeline.client() as client:
        before = scrape(client)
        inserted, dead_lettered = pipeline.worker.stats.inserted, pipeline.worker.stats.dead_lettered
        for i in range(5):
            assert client.post("/track", json={"event_type": "view", "user_id": user, "i": i}).status_code == 202
        batch = [{"event_type": "click", "user_id": user}] * 3 + [{"user_id": user}, {"event_type": "x"}]
        assert client.post("/batch", json=batch).json()["accepted"] == 3
        assert client.post("/track", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
        assert client.get("/no-such-page").status_code == 404

        poison = Producer(client_config(pipeline.settings))
        poison.produce(pipeline.settings.topic, value=b"\x00garbage", key=b"poison")
        assert poison.flush(10) == 0

        stats = pipeline.worker.stats
        pipeline.wait_for(lambda: (stats.inserted, stats.dead_lettered) == (inserted + 8, dead_lettered + 1),
                          what="8 events stored and 1 dead letter")
        after = scrape(client)

    project = pipeline.settings.default_project  # auth off: every event is the default project's
    assert delta(before, after, "streamtrack_events_accepted_total", project=project) == 8
    assert delta(before, after, "streamtrack_events_rejected_total", reason="invalid_event", project=project) == 2
    assert delta(before, after, "streamtrack_events_rejected_total", reason="malformed_json", project=project) == 1
    assert delta(before, after, "streamtrack_http_requests_total", method="POST", route="/track", status="202") == 5
    assert delta(before, after, "streamtrack_http_requests_total", method="POST", route="/batch", status="202") == 1
    assert delta(before, after, "streamtrack_http_requests_total", method="POST", route="/track", status="400") == 1
    assert delta(before, after, "streamtrack_http_requests_total", method="GET", route="(unmatched)", status="404") == 1
    assert delta(before, after, "streamtrack_produce_seconds_count") == 6  # five /track calls, one /batch
    assert delta(before, after, "streamtrack_store_inserted_rows_total") == 8
    assert delta(before, after, "streamtrack_dead_letters_total", reason="undecodable") == 1
    batches = delta(before, after, "streamtrack_worker_batches_total")
    assert batches >= 1
    assert delta(before, after, "streamtrack_worker_batch_events_count") == batches
    assert delta(before, after, "streamtrack_worker_batch_events_sum") == 9  # 8 events and the poison record
    assert delta(before, after, "streamtrack_store_insert_seconds_count") >= 1
    assert after[("streamtrack_producer_queue_events", ())] == 0
    assert ("process_resident_memory_bytes", ()) in after  # the usual process metrics come along


def test_the_worker_port_serves_metrics_and_health() -> None:
    alive = [True]
    server = MetricsServer("127.0.0.1", 0, healthy=lambda: alive[0]).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            assert "streamtrack_worker_batches_total" in metrics.text
            assert "streamtrack_consumer_lag" in metrics.text
            assert client.get("/healthz").status_code == 200
            alive[0] = False
            assert client.get("/healthz").status_code == 503
            assert client.get("/other").status_code == 404
    finally:
        server.stop()


def test_a_scraper_that_hangs_up_mid_answer_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    server = MetricsServer("127.0.0.1", 0).start()
    host, port = server.url.removeprefix("http://").split(":")
    try:
        for _ in range(20):  # the answer is ~10 KB: some writes meet the reset, whichever moment it lands
            with socket.create_connection((host, int(port)), timeout=5) as scraper:
                scraper.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
                scraper.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200  # still serving
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err
