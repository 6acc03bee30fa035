"""`streamtrack dev` as a person runs it: start, send events, read them, Ctrl-C, start again.

Runs the real command in a subprocess (its own broker, its own embedded data folder) and
checks that Ctrl-C drains before stopping, that nothing is left running, and that the
events are still there after a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from streamtrack.kafka.ports import free_port, port_open


def start_dev(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "streamtrack"), "dev"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=out, cwd=log.parent)


def wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_dev_mode_serves_drains_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    port, broker_port = free_port(), free_port()
    env = {
        "STREAMTRACK_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        "STREAMTRACK_DATA_DIR": str(tmp_path / "data"),
    }
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dev.log"
    dev = start_dev(env, log)
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "dev mode to be ready")
        assert f"API            {base}" in log.read_text()
        track = httpx.post(f"{base}/track", json={"event_type": "signup", "user_id": "dev-1", "event_id": "d-1"})
        assert track.status_code == 202
        batch = httpx.post(f"{base}/batch", json=[{"event": "a", "userId": "dev-1"}, {"event": "b", "userId": "dev-1"}])
        assert batch.json()["accepted"] == 2
        dev.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert dev.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if dev.poll() is None:
            dev.kill()
    output = log.read_text()
    assert "stopping: draining events into ClickHouse" in output
    assert "stopped: 3 events stored" in output, output[-2000:]
    assert not port_open("127.0.0.1", broker_port), "the local broker outlived dev mode"

    again = start_dev(env, tmp_path / "dev2.log")
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "dev mode to restart")
        rows = httpx.get(f"{base}/activities", params={"user_id": "dev-1"}).json()["data"]
        assert sorted(r["event_type"] for r in rows) == ["a", "b", "signup"]
        again.send_signal(signal.SIGTERM)
        assert again.wait(60) == 0
    finally:
        if again.poll() is None:
            again.kill()
