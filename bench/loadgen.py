"""What `streamtrack loadgen` achieves against `streamtrack dev` at 100, 1,000, 10,000 events/s and
at max. Prints a table.

    .venv/bin/python bench/loadgen.py --duration 10

Starts `streamtrack dev` (its own broker port, data folder and API port) as one process,
then runs `streamtrack loadgen` as another for each row, as the dashboard's buttons do, so
the generator never shares the API's interpreter. `loadgen CPU` is the generator's own
CPU time per second of run (start-up excluded): what it costs besides the pipeline. The machine is
shared and noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from streamtrack.kafka.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
STREAMTRACK = str(Path(sys.executable).parent / "streamtrack")

ROWS = [  # (label, loadgen arguments)
    ("100/s", ["--rate", "100"]),
    ("1,000/s", ["--rate", "1000"]),
    ("10,000/s", ["--rate", "10000"]),
    ("max", ["--rate", "max"]),
    ("max, single /track", ["--rate", "max", "--batch-size", "1", "--concurrency", "32"]),
]


def wait_ready(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("streamtrack dev did not become ready")


def run_row(url: str, args: list[str], duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [STREAMTRACK, "loadgen", "--url", url, "--duration", str(duration), "--progress", "json", *args],
        capture_output=True, text=True, check=False,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row (default 10)")
    options = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "STREAMTRACK_PORT": str(port), "STREAMTRACK_DATA_DIR": data,
               "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "STREAMTRACK_LOG_LEVEL": "warning"}
        dev = subprocess.Popen([STREAMTRACK, "dev"], env=env, cwd=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(url)
            print(f"streamtrack loadgen against streamtrack dev, {options.duration:g} s per row\n")
            print("| target | requests | achieved events/s | errors | latency p50 / p95 / p99 ms | loadgen CPU |")
            print("|---|---|---|---|---|---|")
            for label, args in ROWS:
                status = run_row(url, args, options.duration)
                cpu = status["cpu_s"] / status["elapsed_s"]
                mode = "POST /track" if status["batch_size"] == 1 else f"POST /batch of {status['batch_size']}"
                print(f"| {label} | {mode} | {status['achieved_rate']:,.0f} | {status['errors']} "
                      f"| {status['p50_ms']:.1f} / {status['p95_ms']:.1f} / {status['p99_ms']:.1f} | {cpu:.0%} |",
                      flush=True)
        finally:
            dev.send_signal(2)  # Ctrl-C: drain and stop
            try:
                dev.wait(120)
            except subprocess.TimeoutExpired:
                dev.kill()


if __name__ == "__main__":
    main()
