"""The `streamtrack` command: dev, api, grpc, worker, migrate, config, smoke, loadgen, archive, replay, dlq.

Settings come from the environment (see `streamtrack.config`); the few flags here are
conveniences that override them for one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import structlog

from streamtrack.auth.command import add_arguments as add_keys_arguments
from streamtrack.config import Settings, load_settings, settings_table
from streamtrack.deadletters.command import add_arguments as add_dlq_arguments
from streamtrack.errors import ConfigError, RetryableError
from streamtrack.extras import missing_extra
from streamtrack.loadgen.command import add_arguments as add_loadgen_arguments
from streamtrack.loadgen.command import run as run_loadgen
from streamtrack.replay import add_arguments as add_replay_arguments
from streamtrack.telemetry import configure_logging, configure_tracing, shutdown_tracing

log = structlog.get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamtrack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="broker, API, worker and embedded ClickHouse in one process")
    api = commands.add_parser("api", help="serve the HTTP API")
    for sub in (dev, api):
        sub.add_argument("--host", help="listen address (STREAMTRACK_HOST)")
        sub.add_argument("--port", type=int, help="listen port (STREAMTRACK_PORT)")
    dev.add_argument("--data-dir", help="data folder: embedded ClickHouse, and the Kafka broker's (STREAMTRACK_DATA_DIR)")
    dev.add_argument(
        "--broker", choices=["kafka", "tansu"], default="kafka",
        help="the local broker started when KAFKA_BOOTSTRAP_SERVERS is on loopback and nothing listens there. "
             "kafka (default): Apache Kafka, one KRaft node with its data and log under the data folder; "
             "what production runs, and durable: a crash loses nothing acknowledged. Needs Java 17+ "
             "(and Maven once, to fetch it; `make dev` does). tansu: no Java, starts at once, but keeps "
             "events in memory only and reports inexact lag; for a quick look.",
    )
    dev.add_argument("--auth", choices=["on", "off"],
                     help="require keys (default off in dev unless STREAMTRACK_AUTH is set); on: prints a dev project's keys")
    commands.add_parser("worker", help="consume events from Kafka into ClickHouse")
    commands.add_parser("grpc", help="serve the gRPC ingestion API (proto/event.proto) on STREAMTRACK_GRPC_PORT")
    commands.add_parser("migrate", help="create or update the ClickHouse schema, then exit")
    operator = commands.add_parser("operator", help="scale the workers on Kafka consumer lag (kopf)")
    operator.add_argument("--namespace", dest="operator_namespace", metavar="NS", help="namespace served (STREAMTRACK_OPERATOR_NAMESPACE)")
    config = commands.add_parser("config", help="print the settings in effect")
    config.add_argument("--markdown", action="store_true", help="print the settings table of docs/configuration.md instead")
    smoke = commands.add_parser("smoke", help="track one event on a deployment and wait until /activities has it")
    smoke.add_argument("--url", required=True, help="the API's base URL, e.g. https://streamtrack.example.com")
    smoke.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the event (default 120)")
    smoke.add_argument("--header", action="append", default=[], help="extra request header 'Name: value' (repeatable)")
    smoke.add_argument("--write-key", default=os.environ.get("STREAMTRACK_SMOKE_WRITE_KEY"),
                       help="a write key of the project to track with (env STREAMTRACK_SMOKE_WRITE_KEY)")
    smoke.add_argument("--read-key", default=os.environ.get("STREAMTRACK_SMOKE_READ_KEY"),
                       help="a read key of the same project (env STREAMTRACK_SMOKE_READ_KEY)")
    loadgen = commands.add_parser("loadgen", help="send realistic traffic at a target rate; report rate, errors, latency")
    add_loadgen_arguments(loadgen)
    add_keys_arguments(commands)  # keys, erase
    commands.add_parser("archive", help="copy every accepted event to the object store (a consumer group of its own)")
    add_replay_arguments(commands)
    add_dlq_arguments(commands)  # dlq list|show|replay|load
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(_parser().parse_args(argv))
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)  # a library of an extra this install left out
        if message is None:
            raise
        print(f"streamtrack: {message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "config" and args.markdown:
        print(settings_table())
        return 0
    if args.command == "smoke":
        return _smoke(args)
    if args.command == "loadgen":
        return run_loadgen(args)
    try:
        settings = load_settings(**overrides(args, os.environ))
    except ConfigError as exc:
        print(f"streamtrack: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=LOG_FORMATS[settings.log_format])
    if args.command in TRACED:
        configure_tracing(f"streamtrack-{args.command}", settings.traces_exporter)
    try:
        if args.command in ("keys", "erase"):
            from streamtrack.auth.command import run as run_keys

            return run_keys(args, settings)
        if args.command == "replay":
            from streamtrack.replay import run as run_replay

            return run_replay(args, settings)
        if args.command == "dlq":
            from streamtrack.deadletters.command import run as run_dlq

            return run_dlq(args, settings)
        if args.command == "dev":
            return _dev(settings, args.broker)
        return COMMANDS[args.command](settings)
    except ConfigError as exc:
        print(f"streamtrack: {exc}", file=sys.stderr)
        return 2
    except RetryableError as exc:
        print(f"streamtrack: {exc.message}", file=sys.stderr)
        return 1
    finally:
        shutdown_tracing()  # exports the spans still buffered


def overrides(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, object]:
    """Settings this run's flags change, and the defaults of `dev` that differ from a deployment's."""
    changed = {k: v for k in ("host", "port", "data_dir", "operator_namespace") if (v := getattr(args, k, None)) is not None}
    if args.command == "dev":
        if args.auth is not None or "STREAMTRACK_AUTH" not in environ:
            changed["auth"] = args.auth == "on"  # keys only when asked
        if "STREAMTRACK_ACCESS_LOG" not in environ:
            changed["access_log"] = False  # a line per request drowns the console; asked for, they show
    return changed


def _dev(settings: Settings, broker: str = "kafka") -> int:
    from streamtrack.dev import run_dev

    return run_dev(settings, broker)


def _api(settings: Settings) -> int:
    from streamtrack.api import Services, create_app
    from streamtrack.api.server import make_server

    services = Services.open(settings)
    # uvicorn drains on SIGTERM, then raises the signal again for the handler it found: make
    # that ours (SystemExit), not the default (death), so the producer and store close below.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        log.info("api listening", host=settings.host, port=settings.port)
        server = make_server(create_app(services), settings.host, settings.port, settings.http_keepalive_seconds)
        server.run()  # on uvloop (api/server.py)
    finally:
        services.close()
        services.store.close()
    return 0


def _grpc(settings: Settings) -> int:
    """The gRPC API alone: its own Deployment in Kubernetes (why: streamtrack.api.grpc.server)."""
    import asyncio

    from streamtrack.api import Services
    from streamtrack.api.grpc import run_grpc

    services = Services.open(settings)
    try:
        asyncio.run(run_grpc(services))
    finally:
        services.close()
        services.store.close()
    return 0


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _worker(settings: Settings) -> int:
    from streamtrack.kafka import ensure_topics
    from streamtrack.lifecycle import start_background
    from streamtrack.store import open_store
    from streamtrack.telemetry.metrics import start_metrics_server
    from streamtrack.worker import Worker, tune_gc

    ensure_topics(settings)
    store = open_store(settings)
    store.migrate()
    tune_gc()
    worker = Worker(settings, store)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    metrics_server = start_metrics_server(settings.host, settings.worker_metrics_port, worker.healthy)
    background = start_background(settings, store)  # the dead-letter loader
    try:
        worker.run()
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        background.stop()
        store.close()
    return 0


def _archive(settings: Settings) -> int:
    from streamtrack.archive import ArchiveWriter
    from streamtrack.kafka import ensure_topics
    from streamtrack.telemetry.metrics import start_metrics_server

    ensure_topics(settings)
    writer = ArchiveWriter(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: writer.stop())
    metrics_server = start_metrics_server(settings.host, settings.worker_metrics_port, lambda: True)
    try:
        writer.run()
    finally:
        if metrics_server is not None:
            metrics_server.stop()
    return 0


def _migrate(settings: Settings) -> int:
    from streamtrack.store import open_store
    from streamtrack.store.keys import migrate_keys
    from streamtrack.store.privacy import apply_retention

    store = open_store(settings)
    store.migrate(rewrite=True)  # the one place that rewrites data (run it with the workers stopped)
    migrate_keys(store)
    apply_retention(store, settings.retention_days)
    log.info("schema is up to date", database=settings.clickhouse_database)
    return 0


def _operator(settings: Settings) -> int:
    from streamtrack.operator.handlers import run

    return run(settings.operator_namespace, settings.host, settings.operator_metrics_port, settings.operator_liveness_port)


def _smoke(args: argparse.Namespace) -> int:
    """Needs no settings: it only talks HTTP to the deployment named by --url."""
    from streamtrack.smoke import SmokeFailure, parse_headers, run_smoke

    try:
        run_smoke(args.url, timeout_s=args.timeout, headers=parse_headers(args.header),
                  write_key=args.write_key, read_key=args.read_key)
    except SmokeFailure as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


def _config(settings: Settings) -> int:
    for name, value in vars(settings).items():
        print(f"{name} = {_redacted(name, value)}")
    return 0


def _redacted(name: str, value: object) -> object:
    """Settings as printed: passwords in CLICKHOUSE_URL and secret Kafka options hidden."""
    if name == "clickhouse_url" and isinstance(value, str) and value:
        parts = urlsplit(value)
        if parts.password:
            netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    if name == "archive_secret_key" and value:
        return "***"
    if name == "kafka_options" and isinstance(value, dict):
        secret = ("password", "secret", "key")
        return {k: "***" if any(word in k for word in secret) else v for k, v in value.items()}
    return value


LOG_FORMATS = {"auto": None, "console": False, "json": True}
"""STREAMTRACK_LOG_FORMAT -> configure_logging's `json` (None: JSON unless stderr is a terminal)."""
TRACED = {"api", "worker", "dev"}
COMMANDS = {"dev": _dev, "api": _api, "worker": _worker, "migrate": _migrate, "config": _config,
            "operator": _operator, "archive": _archive, "grpc": _grpc}

if __name__ == "__main__":
    sys.exit(main())
