"""`streamtrack api` as a process: SIGTERM drains, then closes the producer and store and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.ports import free_port


def test_sigterm_after_a_tracked_event_exits_cleanly(broker: KafkaCluster, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "STREAMTRACK_DATA_DIR": str(tmp_path),
        "STREAMTRACK_PORT": str(port), "STREAMTRACK_AUTH": "off", "STREAMTRACK_TOPIC": f"api-proc-{port}",
        "STREAMTRACK_DLQ_TOPIC": f"api-proc-{port}.dlq",
    }
    process = subprocess.Popen([sys.executable, "-m", "streamtrack.cli", "api"], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        answer = httpx.post(f"http://127.0.0.1:{port}/track", json={"event_type": "x", "user_id": "u"}, timeout=10)
        assert answer.status_code == 202
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # Before: uvicorn re-raised SIGTERM after its drain and the process died with 143, skipping the clean-up.
    assert process.returncode == 0, output.decode()[-2000:]
