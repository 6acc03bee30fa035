"""`streamtrack loadgen` and the /dev/loadgen control against the real pipeline.

Every event the generator counts as accepted must be stored exactly once and be readable
through /activities: each run's event ids share a prefix (`run_id`), so a test finds its
own events among the module's. Runs are bounded by `--count`, not by time, so nothing here
depends on the machine's speed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamtrack.api import create_app
from streamtrack.api.loadgen_control import loadgen_router
from streamtrack.api.server import BackgroundServer
from streamtrack.cli import main
from streamtrack.kafka.ports import free_port
from streamtrack.loadgen.control import LoadgenControl
from streamtrack.loadgen.traffic import EVENT_TYPES
from tests.fixtures.pipeline import Pipeline


def activity_ids(pipeline: Pipeline, prefix: str) -> list[str]:
    """Every event id /activities returns whose id starts with `prefix`, paging to the end."""
    ids: list[str] = []
    params: dict[str, Any] = {"limit": 1000}
    with pipeline.client() as client:
        while True:
            page = client.get("/activities", params=params).json()
            ids += [row["event_id"] for row in page["data"] if row["event_id"].startswith(prefix + "-")]
            if not page["next_cursor"]:
                return ids
            params["cursor"] = page["next_cursor"]


def wait_stored(pipeline: Pipeline, run_id: str, expected: int) -> list[str]:
    pipeline.wait_for(lambda: len(activity_ids(pipeline, run_id)) >= expected, 60, f"{expected} events of {run_id}")
    return activity_ids(pipeline, run_id)


def last_status(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def test_count_sends_exactly_n_single_requests_each_stored_once(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["loadgen", "--url", pipeline.url, "--count", "250", "--rate", "max", "--batch-size", "1", "--seed", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "POST /track" in err and "seed 3" in err
    assert re.search(r"^\s+\d+\.\ds\s+sent\s+250\s+accepted\s+250 .* errors 0 .* p99 [\d.]+ ms$", err, re.M), err
    assert re.search(r"sent 250 events over [\d.]+ s, 250 requests answered", out), out
    assert "accepted 250, errors 0" in out
    run_id = re.search(r"event ids (lg-\w+)-N", err).group(1)  # type: ignore[union-attr]

    ids = wait_stored(pipeline, run_id, 250)
    assert sorted(ids) == sorted(f"{run_id}-{n}" for n in range(1, 251))  # all of them, each once


def test_count_in_batches_and_the_rows_match_the_model(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    rows_before = pipeline.store.stats().rows
    code = main(["loadgen", "--url", pipeline.url, "--count", "1000", "--rate", "max", "--batch-size", "100",
                 "--users", "50", "--progress", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    status = last_status(out)
    assert (status["sent"], status["accepted"], status["errors"], status["requests"]) == (1000, 1000, 0, 10)
    assert status["running"] is False and status["batch_size"] == 100
    assert status["p50_ms"] > 0

    ids = wait_stored(pipeline, status["run_id"], 1000)
    assert len(ids) == len(set(ids)) == 1000
    pipeline.wait_for(lambda: pipeline.store.stats().rows >= rows_before + 1000, 30, "rows")
    assert pipeline.store.stats().rows == rows_before + 1000  # stored once, not only read once
    with pipeline.client() as client:
        rows = client.get("/activities", params={"limit": 1000}).json()["data"]
    mine = [r for r in rows if r["event_id"].startswith(status["run_id"] + "-")]
    assert {r["event_type"] for r in mine} <= set(EVENT_TYPES)
    assert len({r["user_id"] or r["anonymous_id"] for r in mine}) <= 100  # 50 users, logged in or not
    assert all(r["session_id"].startswith(status["run_id"] + "-s") and r["url"] for r in mine)


def test_failures_are_counted_by_cause_and_fail_the_command(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["loadgen", "--url", pipeline.url + "/nowhere", "--count", "30", "--rate", "max", "--progress", "json"])
    status = last_status(capsys.readouterr().out)
    assert code == 1
    assert (status["sent"], status["accepted"], status["errors"]) == (30, 0, 30)
    assert status["errors_by_reason"] == {"404": 30}  # a 4xx is not retried
    assert status["retries"] == 0

    closed = f"http://127.0.0.1:{free_port()}"
    code = main(["loadgen", "--url", closed, "--count", "8", "--concurrency", "8", "--rate", "max", "--progress", "json"])
    status = last_status(capsys.readouterr().out)
    assert code == 1
    assert status["errors_by_reason"] == {"ClientConnectorError": 8}
    assert status["retries"] == 8 * 3  # no answer: retried (same event ids) before giving up


@pytest.mark.parametrize("argv", [["--rate", "fast"], ["--rate", "0"], ["--count", "5", "--duration", "5"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["loadgen", *argv])
    assert exc.value.code == 2
    assert "loadgen" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--duration", "-1"], "duration"), (["--concurrency", "0"], "concurrency"), (["--users", "0"], "users")],
)
def test_unusable_values_exit_2_with_the_reason(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadgen", "--url", "http://127.0.0.1:9", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def control_url(pipeline: Pipeline) -> Iterator[tuple[str, LoadgenControl]]:
    """The API as dev mode serves it: the pipeline's services plus the /dev/loadgen routes."""
    control = LoadgenControl()
    server = BackgroundServer(create_app(pipeline.services, extra_handlers=[loadgen_router(control)])).start()
    control.url = server.url
    yield server.url, control
    control.stop()
    server.stop()


def test_control_starts_reports_and_stops(pipeline: Pipeline, control_url: tuple[str, LoadgenControl]) -> None:
    url, _ = control_url
    with httpx.Client(base_url=url, timeout=30) as client:
        idle = client.get("/dev/loadgen").json()
        assert idle["running"] is False and idle["sent"] == 0

        started = client.post("/dev/loadgen", json={"rate": 200})
        assert started.status_code == 202
        assert started.json()["running"] is True and started.json()["rate"] == 200

        pipeline.wait_for(lambda: client.get("/dev/loadgen").json()["accepted"] >= 50, 30, "the generator to send")
        running = client.get("/dev/loadgen").json()
        expected_keys = {"running", "rate", "sent", "accepted", "errors", "achieved_rate",
                         "p50_ms", "p95_ms", "p99_ms", "elapsed_s"}
        assert expected_keys <= set(running)
        assert running["running"] is True and running["errors"] == 0 and running["batch_size"] == 2
        assert running["achieved_rate"] > 0 and running["p99_ms"] >= running["p50_ms"] > 0

        stopped = client.delete("/dev/loadgen")
        assert stopped.status_code == 200
        final = stopped.json()
        assert final["running"] is False and final["accepted"] >= running["accepted"]
        assert client.get("/dev/loadgen").json() == final  # stopped means stopped: nothing more is sent
        assert client.delete("/dev/loadgen").json()["running"] is False  # stopping twice is harmless

    ids = wait_stored(pipeline, final["run_id"], final["accepted"])
    assert len(ids) == len(set(ids)) == final["accepted"]  # every accepted event, once


def test_control_replaces_a_running_generator_and_stops_by_itself(
    pipeline: Pipeline, control_url: tuple[str, LoadgenControl]
) -> None:
    url, _ = control_url
    with httpx.Client(base_url=url, timeout=30) as client:
        first = client.post("/dev/loadgen", json={"rate": 100})
        assert first.status_code == 202
        second = client.post("/dev/loadgen", json={"rate": 1000, "duration_s": 0.5})
        assert second.status_code == 202 and second.json()["rate"] == 1000
        # The duration ends it; no DELETE.
        pipeline.wait_for(lambda: not client.get("/dev/loadgen").json()["running"], 30, "the generator to finish")
        done = client.get("/dev/loadgen").json()
        assert done["running"] is False and done["rate"] == 1000 and done["batch_size"] == 10
        assert done["sent"] == done["accepted"] > 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "rate", "missing required field"),
        ({"rate": "fast"}, "rate", "Expected `float`"),
        ({"rate": 0}, "rate", "> 0"),
        ({"rate": 1_000_000}, "rate", "<= 100000"),
        ({"rate": 100, "duration_s": -1}, "duration_s", "> 0"),
        ({"rate": 100, "speed": 2}, "speed", "unknown field"),
        ([100], None, "Expected `object`"),
    ],
)
def test_bad_control_input_is_a_400_naming_the_field(
    control_url: tuple[str, LoadgenControl], body: Any, field: str | None, words: str
) -> None:
    response = httpx.post(control_url[0] + "/dev/loadgen", json=body, timeout=10)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid_parameter" and words in error["message"]
    assert error.get("field") == field
    assert httpx.get(control_url[0] + "/dev/loadgen", timeout=10).json()["running"] is False


def test_control_refuses_bodies_that_are_not_json(control_url: tuple[str, LoadgenControl]) -> None:
    bad = httpx.post(control_url[0] + "/dev/loadgen", content=b"rate=100", timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "malformed_json"
    empty = httpx.post(control_url[0] + "/dev/loadgen", content=b"", timeout=10)
    assert empty.status_code == 400 and empty.json()["code"] == "empty_body"


def test_the_control_is_not_served_outside_dev_mode(pipeline: Pipeline) -> None:
    with pipeline.client() as client:
        assert client.get("/dev/loadgen").status_code == 404
        assert client.post("/dev/loadgen", json={"rate": 100}).status_code in (404, 405)


def children_of(pid: int) -> dict[int, str]:
    """Live child processes of `pid` (Linux /proc): pid -> command line."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


def test_the_generator_stops_when_its_parent_goes_away() -> None:
    """--stop-on-eof: the control's child stops when its stdin closes (the API process died)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "streamtrack.cli", "loadgen", "--url", f"http://127.0.0.1:{free_port()}",
         "--rate", "5", "--progress", "json", "--stop-on-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        json.loads(child.stdout.readline())  # it runs: a status line every second
        child.stdin.close()
        assert child.wait(30) in (0, 1)  # stopped by itself (1: every event failed, nothing listens)
        final = json.loads(child.stdout.read().strip().splitlines()[-1])
        assert final["running"] is False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]


def test_dev_mode_serves_the_control_and_stops_the_generator_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "STREAMTRACK_PORT": str(port), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
           "STREAMTRACK_DATA_DIR": str(tmp_path / "data")}
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "dev.log", "wb") as log:
        dev = subprocess.Popen([str(Path(sys.executable).parent / "streamtrack"), "dev"], env=env, stdout=log,
                               stderr=log, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            assert dev.poll() is None and time.monotonic() < deadline, (tmp_path / "dev.log").read_text()[-2000:]
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.post("/dev/loadgen", json={"rate": 100}).status_code == 202
            generators = [p for p, cmd in children_of(dev.pid).items() if "loadgen" in cmd]
            assert len(generators) == 1
            while (accepted := client.get("/dev/loadgen").json()["accepted"]) < 20:
                assert time.monotonic() < deadline, "the generator sent nothing"
                time.sleep(0.1)
        dev.send_signal(signal.SIGINT)  # Ctrl-C: stop the generator, drain, stop
        assert dev.wait(60) == 0, (tmp_path / "dev.log").read_text()[-2000:]
        assert not Path(f"/proc/{generators[0]}").exists(), "the generator outlived dev mode"
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
    output = (tmp_path / "dev.log").read_text()
    stored = int(re.search(r"stopped: (\d+) events stored", output).group(1))  # type: ignore[union-attr]
    assert stored >= accepted  # every event the generator saw accepted was drained into ClickHouse


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
