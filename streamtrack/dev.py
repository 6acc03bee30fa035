"""`streamtrack dev`: the whole pipeline in one process, for a laptop.

A local broker (child process), the embedded ClickHouse engine, one worker on a thread and
the API (HTTP, and gRPC beside it) in the foreground. Embedded ClickHouse allows one process per data folder, which
is why the API and the worker share this process.

The broker is Apache Kafka by default (one KRaft node, Java 17+, fetched from Maven Central
once): its log and data live under the data folder (`DATA/kafka/node-1/`), so a crash loses
nothing acknowledged, and the next start resumes on the same folder. `--broker tansu` is the
zero-dependency alternative: it starts in milliseconds but keeps messages in memory only.
Either way Ctrl-C drains: the API stops taking events, the producer delivers what it holds,
the worker stores and commits everything the producer delivered, then the broker stops.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from pathlib import Path

import structlog

from streamtrack.api import Services, create_app
from streamtrack.api.grpc import serve_beside
from streamtrack.api.loadgen_control import loadgen_router
from streamtrack.api.server import make_server
from streamtrack.auth.dev_keys import dev_keys_banner
from streamtrack.config import Settings
from streamtrack.errors import ConfigError
from streamtrack.kafka.apache import KafkaCluster, KafkaClusterError, KafkaFetchError
from streamtrack.kafka.local_broker import LocalBroker, LocalBrokerError, port_open
from streamtrack.lifecycle import Background, start_background
from streamtrack.loadgen.control import LoadgenControl
from streamtrack.store import open_store
from streamtrack.worker import Worker

log = structlog.get_logger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DRAIN_TIMEOUT = 60.0
BROKERS = ("kafka", "tansu")


def run_dev(settings: Settings, broker_kind: str = "kafka") -> int:
    _check_port_free(settings)
    store = open_store(settings)  # first: a data folder held by another process stops us here
    store.migrate(rewrite=True)  # before any writer starts: an older schema is rewritten here
    broker: KafkaCluster | LocalBroker | None = None
    services: Services | None = None
    worker: Worker | None = None
    worker_thread: threading.Thread | None = None
    loadgen = LoadgenControl(_own_url(settings))  # the dashboard's load buttons (/dev/loadgen)
    background = Background()
    try:
        broker = _start_broker(settings, broker_kind)
        services = Services.open(settings, store)
        worker = Worker(settings, store)
        worker_thread = threading.Thread(target=_run_worker, args=(worker,), name="worker", daemon=True)
        server = make_server(
            create_app(services, extra_handlers=[loadgen_router(loadgen)]),
            settings.host, settings.port, settings.http_keepalive_seconds,
        )
        worker_thread.start()
        background = start_background(settings, store, archive=True)  # dead letters; the archive if asked for
        stop_requests = _trap_signals()
        _print_banner(settings)
        print(dev_keys_banner(settings, store), flush=True)  # keys on: the dev project's keys; off: a loud warning
        # returns on Ctrl-C/SIGTERM, or when the worker crashed; the gRPC API serves beside HTTP meanwhile
        asyncio.run(serve_beside(server, services))
        loadgen.stop()  # no more load while draining
        print("\nstopping: draining events into ClickHouse (Ctrl-C again to stop at once)...", flush=True)
        services.producer.close()
        _drain(services, worker, worker_thread, stop_requests, durable=not isinstance(broker, LocalBroker))
        return 0
    finally:
        # Whatever happened, stop the worker and close the engine before the interpreter
        # exits: chdb crashes at exit while a thread still uses it.
        loadgen.stop()
        background.stop()
        if worker is not None and worker_thread is not None:
            worker.stop()
            worker_thread.join(timeout=30)
            stats = worker.stats
            print(f"stopped: {stats.inserted} events stored in {stats.batches} batches, "
                  f"{stats.dead_lettered} dead letters; data kept in {settings.clickhouse_path}", flush=True)
        if services is not None:
            services.producer.close(timeout=1)
        store.close()
        if broker is not None:
            broker.stop()


def _own_url(settings: Settings) -> str:
    """Where this process serves, as a client on this machine reaches it."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def _check_port_free(settings: Settings) -> None:
    """Fail before starting anything, with a message that says what to change."""
    with socket.socket() as sock:
        # As uvicorn binds: connections of a previous run left in TIME_WAIT (after a crash) do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, settings.port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
                "stop what uses it, or pick another port with STREAMTRACK_PORT or --port"
            ) from None


def _start_broker(settings: Settings, kind: str) -> KafkaCluster | LocalBroker | None:
    """Start the local broker unless the configured one is remote or already running."""
    first = settings.kafka_bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    if host not in LOOPBACK:
        log.info("using the configured Kafka", bootstrap_servers=settings.kafka_bootstrap_servers)
        return None
    if port_open(host, int(port)):
        log.info("a broker already listens; using it", bootstrap_servers=first)
        return None
    host = "127.0.0.1" if host == "localhost" else host
    try:
        if kind == "tansu":
            return LocalBroker(host, int(port)).start()
        print(f"starting Apache Kafka (data and log in {Path(settings.data_dir) / 'kafka'}) ...", flush=True)
        return KafkaCluster(Path(settings.data_dir) / "kafka", nodes=1, port=int(port), host=host).start()
    except (KafkaFetchError, KafkaClusterError, LocalBrokerError) as exc:
        other = "tansu" if kind == "kafka" else "kafka"
        raise ConfigError(f"the {kind} broker did not start: {exc}\n(or try `streamtrack dev --broker {other}`)") from exc


def _run_worker(worker: Worker) -> None:
    try:
        worker.run()
    except Exception:
        log.exception("the worker crashed; stopping dev mode")
        signal.raise_signal(signal.SIGTERM)


def _trap_signals() -> list[int]:
    """Our handlers under uvicorn's: a first Ctrl-C is uvicorn's, a second one during drain stops at once."""
    requests: list[int] = []

    def handle(signum: int, _frame: object) -> None:
        requests.append(signum)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return requests


def _drain(
    services: Services, worker: Worker, worker_thread: threading.Thread, stop_requests: list[int], durable: bool
) -> None:
    """Wait until the worker committed everything the producer delivered."""
    already = len(stop_requests)  # uvicorn re-raises the signal that stopped it
    deadline = time.monotonic() + DRAIN_TIMEOUT
    delivered = dict(services.producer.delivered)
    while worker_thread.is_alive() and time.monotonic() < deadline and len(stop_requests) <= already:
        committed = worker.stats.committed
        if all(committed.get(p, 0) > offset for p, offset in delivered.items()):
            return
        time.sleep(0.1)
    left = "Kafka keeps them: they are stored at the next start" if durable else "they are lost with the in-memory broker"
    if len(stop_requests) > already:
        print(f"stopping at once; events not yet stored: {left}", flush=True)
    elif time.monotonic() >= deadline:
        print(f"drain timed out after {DRAIN_TIMEOUT:.0f} s; events not yet stored: {left}", flush=True)


def _grpc_address(settings: Settings) -> str:
    if not settings.grpc_port:
        return "off (STREAMTRACK_GRPC_PORT=0)"
    return f"{settings.host}:{settings.grpc_port}  (streamtrack.v1.EventService, proto/event.proto; reflection on)"


def _print_banner(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"""
StreamTrack dev is running (Ctrl-C to drain and stop)

  Dashboard      {base}/dashboard
  API            {base}
  gRPC           {_grpc_address(settings)}
  API docs       {base}/schema/swagger
  Recent events  {base}/activities
  Readiness      {base}/readyz

  Kafka          {settings.kafka_bootstrap_servers}  (topic {settings.topic}, dead letters {settings.dlq_topic})
  ClickHouse     embedded, data in {settings.clickhouse_path}

Try:
  curl -s -X POST {base}/track -H 'Content-Type: application/json' \\
       -d '{{"event_type":"page_view","user_id":"u-1","url":"https://example.com/"}}'
  curl -s '{base}/activities?user_id=u-1'
  streamtrack loadgen --url {base} --rate 1000 --duration 30   # or the dashboard's load buttons
""",
        flush=True,
    )
