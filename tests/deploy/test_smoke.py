"""`streamtrack smoke` against the real pipeline: Apache Kafka, API over HTTP, worker, ClickHouse.

The same command runs in Jenkins after every deploy, so these tests pin down both answers it
can give: success only when the event came back from /activities, and a failure that says
which step broke.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamtrack.cli import main
from streamtrack.config import load_settings
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.smoke import SmokeFailure, parse_headers, run_smoke
from streamtrack.store import EventStore
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline


def test_smoke_tracks_an_event_and_finds_it_stored(pipeline: Pipeline) -> None:
    lines: list[str] = []
    result = run_smoke(pipeline.url, timeout_s=60, say=lines.append)
    assert result.event_id.startswith("smoke-")
    assert lines == [
        "ok   GET /healthz -> 200",
        "ok   GET /readyz -> 200",
        "ok   POST /track -> 202",
        f"ok   GET /activities finds {result.event_id} after {result.seconds_to_visible:.1f} s",
    ]
    with pipeline.client() as client:
        rows = client.get("/activities", params={"user_id": result.user_id}).json()["data"]
    assert [(r["event_id"], r["event_type"], r["properties"]) for r in rows] == [
        (result.event_id, "smoke_test", {"source": "streamtrack smoke"})
    ]


def test_smoke_command_exits_zero_on_success(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["smoke", "--url", pipeline.url + "/", "--timeout", "60", "--header", "X-Smoke: 1"]) == 0
    assert capsys.readouterr().out.endswith("smoke test passed\n")


def test_smoke_fails_naming_the_worker_when_events_are_never_stored(
    broker: KafkaCluster, store: EventStore, engine_path: Path
) -> None:
    settings = load_settings(env=pipeline_env(broker, store.database, engine_path.parent))
    api_only, stop = start_pipeline(settings, store, with_worker=False)
    try:
        with pytest.raises(SmokeFailure, match=r"did not return smoke-\w+ within 3 s: the API accepted it, so check the worker"):
            run_smoke(api_only.url, timeout_s=3, say=lambda _: None)
    finally:
        stop()


def test_smoke_command_exits_one_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["smoke", "--url", "http://127.0.0.1:9", "--timeout", "1"]) == 1
    assert capsys.readouterr().err.startswith("FAIL GET http://127.0.0.1:9/healthz: ConnectError")


def test_headers_must_be_name_colon_value() -> None:
    assert parse_headers(["Authorization: Bearer abc", "X-A:b"]) == {"Authorization": "Bearer abc", "X-A": "b"}
    with pytest.raises(SmokeFailure, match="--header expects 'Name: value', got 'nocolon'"):
        parse_headers(["nocolon"])
