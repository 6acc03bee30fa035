"""Ingestion at its ceilings: POST /track and POST /batch against what bounds them, in one run.

    make bench                       # or: .venv/bin/python bench/ingest.py --duration 8
    .venv/bin/python bench/ingest.py --brokers kafka --profile /tmp/prof   # py-spy flame data too

For each broker (Apache Kafka, one KRaft node; the local Tansu broker) one table row per case:
- a bare Litestar handler on the same server stack (api/server.py's `make_server`), fed the
  same /track body by the same wrk: the ceiling of /track;
- `POST /track` and `POST /batch` (100 events per request) with auth off, then on (a write
  key, so the cached key path; rate limits raised out of the way but still taken);
- raw produce from Python of the same encoded events, with the API producer's settings and
  every delivery report waited for: the ceiling of /batch.
Each API runs as its own process (`streamtrack api`), loaded by wrk (Debian package, installed
if missing) from another; its RSS is sampled while it is under load. Everything is on loopback
and bounded by `--duration`. The machine is shared: compare rows of one run (the ratios), not
runs of different days; `--rounds N` interleaves the cases N times and reports medians.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

TRACK_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"event_type":"page_view","user_id":"u%%d","session_id":"s%%d","url":"https://shop.test/p/%%d","properties":{"plan":"pro","n":%%d}}',
    counter %% 5000, counter %% 20000, counter %% 50, counter)
  return wrk.format("POST", "/track", %(headers)s, body)
end
"""

BATCH_EVENT = (
    '{"event_type":"click","user_id":"u%d","session_id":"s%d","url":"https://shop.test/p/%d","properties":{"plan":"pro"}}'
)
BATCH_BODIES = 20

BATCH_LUA = """
bodies = {}
for b = 1, %(bodies)d do
  local events = {}
  for i = 1, %(size)d do
    local n = b * %(size)d + i
    events[i] = string.format('%(event)s', n %% 5000, n %% 20000, i %% 50)
  end
  bodies[b] = "[" .. table.concat(events, ",") .. "]"
end
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/batch", %(headers)s, bodies[counter %% %(bodies)d + 1])
end
"""


def lua_headers(key: str | None) -> str:
    headers = '["Content-Type"]="application/json"'
    if key:
        headers += f', ["Authorization"]="Bearer {key}"'
    return "{" + headers + "}"


def batch_bodies(size: int) -> list[bytes]:
    """The bodies BATCH_LUA sends, built the same way (raw produce encodes their events)."""
    bodies = []
    for b in range(1, BATCH_BODIES + 1):
        events = [BATCH_EVENT % ((b * size + i) % 5000, (b * size + i) % 20000, i % 50) for i in range(1, size + 1)]
        bodies.append(("[" + ",".join(events) + "]").encode())
    return bodies


# --- processes ------------------------------------------------------------------------------


def ensure_wrk() -> None:
    if not shutil.which("wrk"):
        subprocess.run([str(ROOT / "scripts" / "apt-install"), "wrk"], check=True)


def run_wrk(url: str, script: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", "-s", handle.name, url],
            capture_output=True, text=True, check=True, timeout=duration + 60,
        ).stdout
    finally:
        os.unlink(handle.name)

    def ms(label: str) -> float:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    seconds = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = int(bad.group(1)) if bad else 0
    return {
        "ok": requests - non2xx, "seconds": seconds, "errors": non2xx + (sum(map(int, errors.groups())) if errors else 0),
        "p50": ms("50"), "p99": ms("99"),
    }


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, path: str = "/readyz") -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited at start; see {log}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{url} did not become ready; see {log}")


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str], log: Path, url: str, ready_path: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server process for the duration of the block, stopped (SIGTERM, then SIGKILL) after it."""
    with open(log, "ab") as out:
        process = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=out, cwd=ROOT)
    try:
        wait_ready(url, process, log, ready_path)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, every thread) `pid` used so far; this process's when None."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def sampling_rss(pid: int) -> Iterator[list[float]]:
    """RSS of `pid` every half second while the block runs (the list fills as it goes)."""
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            with contextlib.suppress(OSError):
                samples.append(rss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


@contextlib.contextmanager
def profiling(pid: int, out: Path | None, duration: int) -> Iterator[None]:
    """py-spy (PyPI) sampling `pid` into `out` (collapsed stacks, one line per stack) while the block runs."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(duration), "-r", "100", "--nonblocking", "-t", "-f", "raw",
         "-o", str(out.with_suffix(".txt"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.wait(duration + 30)


# --- the echo ceiling -----------------------------------------------------------------------


BASELINE_LAUNCHER = """
import importlib.util, os, sys
tree = sys.argv.pop(1)
sys.path.insert(0, tree)
for name in ("api", "worker", "operator"):  # the package-dir mapping of pyproject.toml, onto `tree`
    if not os.path.exists(f"{tree}/{name}/__init__.py"):
        continue  # a namespace portion (operator/ today): the tree's streamtrack/<name> link finds it
    spec = importlib.util.spec_from_file_location(
        f"streamtrack.{name}", f"{tree}/{name}/__init__.py", submodule_search_locations=[f"{tree}/{name}"])
    sys.modules[spec.name] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
from streamtrack.cli import main
sys.exit(main())
"""
"""`--baseline TREE`: `streamtrack api` from another checkout (e.g. `git worktree add /tmp/base HEAD~3`)."""


def serve_echo(port: int) -> None:
    """A bare Litestar POST handler (decode the JSON body, answer 202) on the API's server stack."""
    import msgspec
    from litestar import Litestar, Request, get, post

    from streamtrack.api.server import make_server

    @post("/track", status_code=202)
    async def echo(request: Request) -> dict[str, str]:  # type: ignore[type-arg]
        msgspec.json.decode(await request.body())
        return {"event_id": "0"}

    @get("/readyz", sync_to_thread=False)
    def ready() -> str:
        return "ok"

    app = Litestar([echo, ready], debug=False, logging_config=None, openapi_config=None)
    make_server(app, "127.0.0.1", port).run()


# --- raw produce ----------------------------------------------------------------------------


def raw_produce(bootstrap: str, bodies: list[bytes], seconds: float) -> dict[str, float]:
    """Produce the batch bodies' events, encoded as the API encodes them, for `seconds`; events/s acknowledged.

    Same producer settings as the API's (streamtrack.kafka.producer), one delivery callback
    for all; the clock stops when the last report is in.
    """
    from confluent_kafka import Producer

    from streamtrack.config import load_settings
    from streamtrack.events import encode_event
    from streamtrack.kafka import ensure_topics
    from streamtrack.kafka.producer import HEADERS, producer_config
    from streamtrack.normalize import Limits, RequestContext, normalize_raw, split_batch
    from streamtrack.timestamps import now_ms

    settings = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "STREAMTRACK_TOPIC": "bench-raw"})
    ensure_topics(settings)
    context = RequestContext(received_at=now_ms(), ip="127.0.0.1", user_agent="wrk")
    records = [
        (encode_event(event), event.partition_key.encode())
        for body in bodies
        for event in (normalize_raw(raw, context, Limits()) for raw in split_batch(body, max_events=10_000))
    ]
    producer = Producer(producer_config(settings))
    counts = {"ok": 0, "failed": 0}

    def report(err: object, _msg: object) -> None:
        counts["failed" if err else "ok"] += 1

    sent = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for value, key in records:
            try:
                producer.produce(settings.topic, value=value, key=key, headers=HEADERS, on_delivery=report)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    return {"ok": counts["ok"], "seconds": elapsed, "errors": sent - counts["ok"]}  # failed or never reported


# --- one broker's table ---------------------------------------------------------------------


def write_key(data_dir: Path, env: dict[str, str]) -> str:
    """A project and its write key in `data_dir`'s store, for the API with auth on."""
    from streamtrack.auth.keys import KeyKind, new_key
    from streamtrack.config import load_settings
    from streamtrack.store import open_store
    from streamtrack.store.keys import add_key, create_project, migrate_keys

    store = open_store(load_settings(env={**env, "STREAMTRACK_DATA_DIR": str(data_dir)}))
    try:
        store.migrate()
        migrate_keys(store)
        create_project(store, "bench", "bench")
        key = new_key(KeyKind.WRITE)
        add_key(store, "bench", key)
        return key.secret
    finally:
        store.close()


Row = dict[str, object]


def measure_broker(name: str, bootstrap: str, args: argparse.Namespace, data: Path) -> list[Row]:
    from streamtrack.kafka.ports import free_port

    base = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "STREAMTRACK_LOG_LEVEL": "warning", "STREAMTRACK_TOPIC_PARTITIONS": "6",
        "STREAMTRACK_TOPIC": f"bench-{name}", "STREAMTRACK_DLQ_TOPIC": f"bench-{name}.dlq",
        "STREAMTRACK_RATE_LIMIT_KEY_PER_S": "10000000", "STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S": "10000000",
        "STREAMTRACK_BOT_EVENTS_PER_SECOND": "0",
        **dict(kv.split("=", 1) for kv in args.env),
    }
    key = write_key(data / f"{name}-on", base)
    apis = ("off", "on", "base") if args.baseline else ("off", "on")
    ports = {case: free_port() for case in ("echo", *apis)}
    api = [sys.executable, "-m", "streamtrack.cli", "api"]
    envs = {
        case: {**base, "STREAMTRACK_PORT": str(ports[case]), "STREAMTRACK_DATA_DIR": str(data / f"{name}-{case}"),
               "STREAMTRACK_AUTH": "on" if case == "on" else "off"}
        for case in apis
    }
    url = {case: f"http://127.0.0.1:{port}" for case, port in ports.items()}
    track = {case: TRACK_LUA % {"headers": lua_headers(key if case == "on" else None)} for case in ("echo", *apis)}
    batch = {
        case: BATCH_LUA % {"size": args.batch_size, "bodies": BATCH_BODIES, "event": BATCH_EVENT.replace("%d", "%%d"),
                           "headers": lua_headers(key if case == "on" else None)}
        for case in apis
    }
    results: dict[str, list[dict[str, float]]] = {}
    rss: dict[str, list[float]] = {}
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    with (
        child([sys.executable, str(Path(__file__).resolve()), "--serve-echo", str(ports["echo"])], base,
              logs / f"{name}-echo.log", url["echo"], "/readyz") as echo,
        child(api, envs["off"], logs / f"{name}-api-off.log", url["off"], "/readyz") as off,
        child(api, envs["on"], logs / f"{name}-api-on.log", url["on"], "/readyz") as on,
        # -P: an older tree's operator/ package would shadow the standard library's from the working directory.
        (child([sys.executable, "-P", "-c", BASELINE_LAUNCHER, str(args.baseline), "api"], envs["base"],
               logs / f"{name}-api-base.log", url["base"], "/readyz") if args.baseline
         else contextlib.nullcontext()) as baseline,
    ):
        pids = {"echo": echo.pid, "off": off.pid, "on": on.pid, **({"base": baseline.pid} if baseline else {})}
        for case in ("echo", *apis):  # warm-up: connections, topic metadata, key cache
            run_wrk(url[case], track[case], 2, args.connections)
        plan: list[tuple[str, str, str, Callable[[], dict[str, float]]]] = []
        for case in ("echo", *apis):
            plan.append((f"track-{case}", case, "track",
                         lambda case=case: run_wrk(url[case], track[case], args.duration, args.connections)))
        for case in apis:
            plan.append((f"batch-{case}", case, "batch",
                         lambda case=case: run_wrk(url[case], batch[case], args.duration, args.connections)))
        plan.append(("raw", "", "raw", lambda: raw_produce(bootstrap, batch_bodies(args.batch_size), args.duration)))
        for round_ in range(args.rounds):
            for label, case, _kind, run in plan:
                prof = args.profile / f"{name}-{label}-{round_}" if args.profile and case == "off" else None
                pid = pids.get(case)
                cpu = cpu_seconds(pid)
                with (sampling_rss(pid) if pid else contextlib.nullcontext([])) as samples, \
                        profiling(pid, prof, args.duration) if pid else contextlib.nullcontext():
                    result = run()
                result["cpu"] = cpu_seconds(pid) - cpu
                results.setdefault(label, []).append(result)
                rss.setdefault(label, []).extend(samples[len(samples) // 2:])  # steady load: the second half
    per_request = {"track": 1, "batch": args.batch_size, "raw": 1}

    def median(label: str, field: str) -> float:
        return statistics.median(r[field] for r in results[label])

    def rate(label: str) -> float:
        kind = label.split("-")[0]
        return statistics.median(r["ok"] * per_request[kind] / r["seconds"] for r in results[label])

    def cpu_us(label: str) -> float:
        """CPU of the serving process (the bench itself for raw produce) per event: steadier than rates on a busy machine."""
        kind = label.split("-")[0]
        return statistics.median(r["cpu"] / max(r["ok"] * per_request[kind], 1) * 1e6 for r in results[label])

    ceiling = {"track-off": ("track-echo", "echo"), "track-on": ("track-off", "auth off"),
               "batch-off": ("raw", "raw produce"), "batch-on": ("batch-off", "auth off"),
               "track-base": ("track-off", "this tree"), "batch-base": ("batch-off", "this tree")}
    titles = {
        "track-echo": "bare Litestar handler, same server (req/s)", "track-off": "POST /track, auth off (req/s)",
        "track-on": "POST /track, auth on (req/s)", "batch-off": f"POST /batch, {args.batch_size}/request, auth off (events/s)",
        "batch-on": f"POST /batch, {args.batch_size}/request, auth on (events/s)",
        "raw": "raw produce from Python, same events (events/s)",
        "track-base": f"POST /track, auth off, {args.baseline} (req/s)",
        "batch-base": f"POST /batch, auth off, {args.baseline} (events/s)",
    }
    rows = []
    for label, _, kind, _ in plan:
        ratio = ""
        if label in ceiling:
            other, what = ceiling[label]
            ratio = f"{rate(label) / rate(other):.2f} x {what}"
        latency = f"{median(label, 'p50'):.1f} / {median(label, 'p99'):.1f}" if kind != "raw" else ""
        rows.append({
            "broker": name, "case": titles[label], "rate": f"{rate(label):,.0f}", "latency": latency, "ratio": ratio,
            "cpu": f"{cpu_us(label):.0f}",
            "errors": str(sum(int(r["errors"]) for r in results[label])),
            "rss": f"{max(rss[label]):.0f}" if rss[label] else "",
        })
    return rows


# --- main -------------------------------------------------------------------------------------


def print_table(rows: list[Row], args: argparse.Namespace, load: tuple[float, float]) -> None:
    header = {"broker": "broker", "case": "case", "rate": "rate", "latency": "p50 / p99 ms", "ratio": "ratio",
              "cpu": "CPU µs/event", "errors": "errors", "rss": "API RSS MB"}
    widths = {k: max(len(str(r[k])) for r in (*rows, header)) for k in header}
    print()
    for row in (header, {k: "-" * w for k, w in widths.items()}, *rows):
        print("| " + " | ".join(str(row[k]).ljust(w) for k, w in widths.items()) + " |")
    print(
        f"\n{datetime.date.today()}, {os.cpu_count()} cores, load average {load[0]:.1f} before / {load[1]:.1f} after; "
        f"wrk 1 thread, {args.connections} connections, {args.duration} s per case, {args.rounds} round(s) "
        f"(medians); RSS: the API's, second half of its case"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per case")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of every case (medians)")
    parser.add_argument("--brokers", default="kafka,local", help="kafka (Apache Kafka, one node), local (Tansu)")
    parser.add_argument("--profile", type=Path, help="folder for py-spy's samples of the auth-off API")
    parser.add_argument("--baseline", type=Path, help="also run the auth-off API from this checkout, interleaved")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra settings of the APIs")
    parser.add_argument("--serve-echo", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo)
        return

    from streamtrack.kafka.apache import KafkaCluster
    from streamtrack.kafka.local_broker import LocalBroker
    from streamtrack.telemetry.logs import configure_logging

    configure_logging("warning", json=False)
    ensure_wrk()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="streamtrack-bench-ingest-"))
    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    for name in args.brokers.split(","):
        broker: KafkaCluster | LocalBroker
        if name == "kafka":
            broker = KafkaCluster(data / "kafka", nodes=1)
        elif name == "local":
            broker = LocalBroker(log_path=data / "local-broker.log")
        else:
            raise SystemExit(f"unknown broker {name!r}: kafka or local")
        with broker:
            rows += measure_broker(name, broker.bootstrap_servers, args, data)
    shutil.rmtree(data, ignore_errors=True)  # kept, with the servers' logs, when a case failed
    print_table(rows, args, (load_before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
