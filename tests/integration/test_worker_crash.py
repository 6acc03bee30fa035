"""SIGKILL a worker mid-stream, start another: every acknowledged event is stored exactly once.

The worker runs as a real `streamtrack worker` process with its own embedded ClickHouse
folder (one process per folder), so the result is read back by a separate process too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from streamtrack.config import load_settings
from streamtrack.kafka import client_config, committed_offsets
from tests.fixtures.pipeline import pipeline_env, start_pipeline

READ_BACK = """
import json
from streamtrack.config import load_settings
from streamtrack.store import open_store
store = open_store(load_settings())
stats = store.stats()
ids = [event.event_id for event in store.activities(limit=100_000)]
print(json.dumps({"ids": ids, "rows": stats.rows, "distinct": stats.distinct_events}))
"""


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streamtrack.cli", "worker"], env={**os.environ, **env}, stdout=out, stderr=out
        )


def test_sigkill_mid_stream_then_a_new_worker_stores_every_event_once(broker, store, tmp_path: Path) -> None:
    env = pipeline_env(
        broker, f"crash_{uuid.uuid4().hex[:8]}", tmp_path / "worker-data",
        STREAMTRACK_BATCH_MAX_EVENTS="300", STREAMTRACK_BATCH_MAX_WAIT_MS="100",
    )
    settings = load_settings(env=env)
    api, stop_api = start_pipeline(settings, store, with_worker=False)
    config = client_config(settings)

    def committed_total() -> int:
        return sum(max(o, 0) for o in committed_offsets(config, settings.consumer_group, settings.topic).values())

    sent: set[str] = set()
    total = 10_000

    def send() -> None:
        with api.client() as client:
            for start in range(0, total, 250):
                batch = [{"event_type": "view", "user_id": f"u{(start + i) % 50}", "i": start + i} for i in range(250)]
                body = client.post("/batch", json=batch).json()
                assert body["accepted"] == 250, body
                sent.update(r["event_id"] for r in body["results"])
                time.sleep(0.08)

    first = spawn_worker(env, tmp_path / "worker1.log")
    sender = threading.Thread(target=send)
    sender.start()
    try:
        api.wait_for(lambda: committed_total() >= 1500, timeout=60, what="the first worker to commit")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = committed_total()
        assert killed_at < total, "the kill came after the stream ended; slow the sender down"
        sender.join(60)
        assert len(sent) == total

        second = spawn_worker(env, tmp_path / "worker2.log")
        delivered = dict(api.services.producer.delivered)

        def caught_up() -> bool:
            offsets = committed_offsets(config, settings.consumer_group, settings.topic)
            return all(offsets.get(p, -1) > offset for p, offset in delivered.items())

        api.wait_for(caught_up, timeout=90, what="the second worker to catch up")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, (tmp_path / "worker2.log").read_text()[-2000:]
    finally:
        for process in (first, locals().get("second")):
            if process is not None and process.poll() is None:
                process.kill()
        stop_api()

    out = subprocess.run(
        [sys.executable, "-c", READ_BACK], env={**os.environ, **env}, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    result = json.loads(out.stdout)
    assert len(result["ids"]) == total, f"{len(result['ids'])} events readable, {total} sent"
    assert set(result["ids"]) == sent
    assert result["distinct"] == total
    print(f"killed after {killed_at} committed; raw rows {result['rows']} for {total} events")
