"""Settings: every knob StreamTrack has, read once from the environment.

Each setting is declared once below with its variable, default, parser and a line of
documentation; docs/configuration.md's table is generated from the same list
(`streamtrack config --markdown`), so the docs cannot drift from the code.
The defaults give the embedded mode: a broker on loopback and ClickHouse in-process.
A bad value stops start-up with one message naming every offending variable.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from streamtrack.errors import ConfigError


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer between {low} and {high}, got {value}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _name(raw: str) -> str:
    value = raw.strip()
    if not value or not all(c.isalnum() or c in "._-" for c in value) or len(value) > 200:
        raise ValueError("expected a non-empty name of letters, digits, '.', '_' or '-'")
    return value


def _bucket(raw: str) -> str:
    """An S3 bucket name (3-63 lower-case letters, digits, '.', '-'); the client would refuse others at the first request."""
    value = raw.strip()
    if not 3 <= len(value) <= 63 or not all(c.islower() or c.isdigit() or c in ".-" for c in value) \
            or not (value[0].isalnum() and value[-1].isalnum()):
        raise ValueError("expected an S3 bucket name: 3-63 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit")
    return value


def _identifier(raw: str) -> str:
    value = raw.strip()
    if not value or not all(c.isalnum() or c == "_" for c in value) or value[0].isdigit():
        raise ValueError("expected an identifier of letters, digits and '_' (not starting with a digit)")
    return value


def _servers(raw: str) -> str:
    servers = [s.strip() for s in raw.split(",") if s.strip()]
    if not servers:
        raise ValueError("expected host:port[,host:port...]")
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port[,host:port...], {server!r} is not host:port")
    return ",".join(servers)


def _url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("expected an http(s) URL such as http://user:password@clickhouse:8123/database")
    return value


def _kafka_options(raw: str) -> dict[str, str]:
    """`key=value,key=value` librdkafka properties, e.g. for SASL/TLS."""
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value[,key=value...], {item!r} has no '='")
        options[key.strip()] = value.strip()
    return options


def _text(raw: str) -> str:
    return raw.strip()


def _addresses(raw: str) -> str:
    """Comma-separated IP addresses and networks (CIDR), or `*`; uvicorn would take a typo as a
    literal that never matches, so each one is checked here."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if items == ["*"]:
        return "*"
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(f"expected IP addresses or networks (a.b.c.d, a.b.c.0/24) or '*', {item!r} is neither") from None
    return ",".join(items)


def _switch(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0"):
        raise ValueError("expected on or off")
    return value in ("on", "true", "1")


@dataclasses.dataclass(frozen=True)
class Setting:
    env: str
    default: str
    parse: Callable[[str], Any]
    doc: str


# field name -> how to read it. Order is the order of the table in docs/configuration.md.
SETTINGS: dict[str, Setting] = {
    "host": Setting("STREAMTRACK_HOST", "127.0.0.1", _text, "Address the API listens on (0.0.0.0 in containers)."),
    "port": Setting("STREAMTRACK_PORT", "8000", _int(1, 65535), "Port the API listens on."),
    "grpc_port": Setting(
        "STREAMTRACK_GRPC_PORT", "50051", _int(0, 65535),
        "Port of the gRPC ingestion API (`streamtrack grpc`; `streamtrack dev` serves it beside HTTP, 0: not).",
    ),
    "http_keepalive_seconds": Setting(
        "STREAMTRACK_HTTP_KEEPALIVE_SECONDS", "75", _int(1, 3600),
        "Idle keep-alive connections are closed after this. Keep it above the idle timeout of the load "
        "balancer in front (GCP: 600 s, AWS ALB: 60 s), or it closes connections the balancer is reusing.",
    ),
    "forwarded_allow_ips": Setting(
        "STREAMTRACK_FORWARDED_ALLOW_IPS", "", _addresses,
        "Proxies whose `X-Forwarded-For`/`X-Forwarded-Proto` the API believes (and the gRPC API's "
        "`x-forwarded-for` metadata): addresses or CIDR networks, comma-separated, or `*`. Empty: none, the "
        "client address is the peer's (a client cannot choose the address the rate limiter sees). The chart "
        "sets its Ingress's.",
    ),
    "http_header_timeout_seconds": Setting(
        "STREAMTRACK_HTTP_HEADER_TIMEOUT_SECONDS", "10", _int(1, 3600),
        "A request's line and headers must arrive within this many seconds of its first byte (else 408, closed).",
    ),
    "http_body_timeout_seconds": Setting(
        "STREAMTRACK_HTTP_BODY_TIMEOUT_SECONDS", "30", _int(1, 3600),
        "A request's body must arrive within this many seconds of its headers (else 408, closed).",
    ),
    "http_max_header_bytes": Setting(
        "STREAMTRACK_HTTP_MAX_HEADER_BYTES", "32768", _int(1024, 1024 * 1024),
        "Largest request line plus headers (else 431, closed).",
    ),
    "http_max_headers": Setting(
        "STREAMTRACK_HTTP_MAX_HEADERS", "100", _int(8, 10_000), "Most header fields in one request (else 431, closed)."
    ),
    "kafka_bootstrap_servers": Setting(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", _servers,
        "Kafka brokers. `streamtrack dev` starts a local broker here when it is on loopback.",
    ),
    "kafka_options": Setting(
        "STREAMTRACK_KAFKA_OPTIONS", "", _kafka_options,
        "Extra librdkafka properties, `key=value,...` (e.g. `security.protocol=SASL_SSL,sasl.mechanism=PLAIN`).",
    ),
    "topic": Setting("STREAMTRACK_TOPIC", "events", _name, "Topic the API produces events to."),
    "dlq_topic": Setting("STREAMTRACK_DLQ_TOPIC", "events.dlq", _name, "Dead-letter topic for records the worker cannot store."),
    "topic_partitions": Setting(
        "STREAMTRACK_TOPIC_PARTITIONS", "6", _int(1, 10_000),
        "Partitions of the events topic when StreamTrack creates it (the most workers that can share the load).",
    ),
    "topic_replication": Setting(
        "STREAMTRACK_TOPIC_REPLICATION", "1", _int(1, 16), "Replication factor of topics StreamTrack creates."
    ),
    "consumer_group": Setting("STREAMTRACK_CONSUMER_GROUP", "streamtrack-worker", _name, "Consumer group of the workers."),
    "session_timeout_ms": Setting(
        "STREAMTRACK_SESSION_TIMEOUT_MS", "6000", _int(1000, 300_000),
        "Consumer session timeout; low values make group joins and failover fast.",
    ),
    "produce_timeout_ms": Setting(
        "STREAMTRACK_PRODUCE_TIMEOUT_MS", "5000", _int(100, 300_000),
        "How long the API waits for the broker's acknowledgement before answering 503.",
    ),
    "producer_linger_ms": Setting(
        "STREAMTRACK_PRODUCER_LINGER_MS", "5", _int(0, 10_000),
        "How long the producer gathers events into one request (latency vs. throughput).",
    ),
    "producer_queue_max": Setting(
        "STREAMTRACK_PRODUCER_QUEUE_MAX", "100000", _int(1, 10_000_000),
        "Events the API may hold unacknowledged; beyond it requests get 503 (backpressure).",
    ),
    "clickhouse_url": Setting(
        "CLICKHOUSE_URL", "", _url,
        "ClickHouse server, `http(s)://user:password@host:port/database`. Empty: the embedded engine (chdb).",
    ),
    "clickhouse_database": Setting(
        "STREAMTRACK_CLICKHOUSE_DATABASE", "streamtrack", _identifier,
        "Database for StreamTrack's tables (overridden by a database in CLICKHOUSE_URL).",
    ),
    "clickhouse_cluster": Setting(
        "STREAMTRACK_CLICKHOUSE_CLUSTER", "", _text,
        "ClickHouse cluster name; when set, the schema uses Replicated tables and a Distributed table ON CLUSTER.",
    ),
    "data_dir": Setting(
        "STREAMTRACK_DATA_DIR", ".streamtrack", _text, "Folder of the embedded engine's data (embedded mode only)."
    ),
    "batch_max_events": Setting(
        "STREAMTRACK_BATCH_MAX_EVENTS", "10000", _int(1, 1_000_000), "Most events the worker inserts at once."
    ),
    "batch_max_wait_ms": Setting(
        "STREAMTRACK_BATCH_MAX_WAIT_MS", "500", _int(1, 600_000),
        "Longest the worker gathers a batch before inserting it.",
    ),
    "dedup_cache_events": Setting(
        "STREAMTRACK_DEDUP_CACHE_EVENTS", "1000000", _int(1000, 100_000_000),
        "Most event ids the worker remembers to drop copies without asking ClickHouse (~100 bytes each);"
        " a smaller cache only means more lookups.",
    ),
    "dedup_window_ms": Setting(
        "STREAMTRACK_DEDUP_WINDOW_MS", "3600000", _int(0, 30 * 86_400_000),
        "How far back (event time) the worker's id cache is warmed from ClickHouse when it gets partitions.",
    ),
    "max_event_bytes": Setting(
        "STREAMTRACK_MAX_EVENT_BYTES", "65536", _int(1024, 16 * 1024 * 1024), "Largest accepted event (JSON bytes)."
    ),
    "max_batch_bytes": Setting(
        "STREAMTRACK_MAX_BATCH_BYTES", str(5 * 1024 * 1024), _int(1024, 256 * 1024 * 1024),
        "Largest accepted request body of the batch endpoint.",
    ),
    "max_batch_events": Setting(
        "STREAMTRACK_MAX_BATCH_EVENTS", "2500", _int(1, 100_000), "Most events in one batch request."
    ),
    "log_level": Setting(
        "STREAMTRACK_LOG_LEVEL", "info", _choice("debug", "info", "warning", "error"), "Log level."
    ),
    "log_format": Setting(
        "STREAMTRACK_LOG_FORMAT", "auto", _choice("auto", "console", "json"),
        "`auto`: readable lines when stderr is a terminal, JSON lines otherwise (containers, CI, pipes); "
        "`console` or `json` force one.",
    ),
    "access_log": Setting(
        "STREAMTRACK_ACCESS_LOG", "on", _switch,
        "`on`: a `request` line per HTTP request (method, path, status, ms; probes and scrapes at debug level). "
        "`streamtrack dev` defaults to off.",
    ),
    "worker_metrics_port": Setting(
        "STREAMTRACK_WORKER_METRICS_PORT", "9101", _int(0, 65535),
        "Port of the worker's `/metrics` and `/healthz` (on STREAMTRACK_HOST); 0 turns it off.",
    ),
    "traces_exporter": Setting(
        "OTEL_TRACES_EXPORTER", "none", _choice("none", "otlp", "console"),
        "Traces: `none` (off, no cost), `otlp` (OTLP/HTTP, configured by the standard `OTEL_EXPORTER_OTLP_*` variables) or `console`.",
    ),
    "operator_namespace": Setting(
        "STREAMTRACK_OPERATOR_NAMESPACE", "default", _name,
        "Namespace whose WorkerAutoscalers the operator serves (`streamtrack operator --namespace`).",
    ),
    "operator_metrics_port": Setting(
        "STREAMTRACK_OPERATOR_METRICS_PORT", "9102", _int(1, 65535), "Port of the operator's Prometheus `/metrics`."
    ),
    "operator_liveness_port": Setting(
        "STREAMTRACK_OPERATOR_LIVENESS_PORT", "8080", _int(1, 65535), "Port of the operator's (kopf's) `/healthz`."
    ),
    # --- keys, projects and abuse (docs/operations/security.md) ---
    "auth": Setting(
        "STREAMTRACK_AUTH", "on", _switch,
        "`on`: every API call needs a project key (write key to ingest, read key to query). "
        "`off`: no keys, everything is project STREAMTRACK_DEFAULT_PROJECT (`streamtrack dev` defaults to off).",
    ),
    "default_project": Setting(
        "STREAMTRACK_DEFAULT_PROJECT", "default", _name, "The project of every request while auth is off."
    ),
    "key_cache_seconds": Setting(
        "STREAMTRACK_KEY_CACHE_SECONDS", "5", _int(0, 3600),
        "How long an API replica trusts a key lookup; a revoked key stops working within this time.",
    ),
    "rate_limit_key_per_s": Setting(
        "STREAMTRACK_RATE_LIMIT_KEY_PER_S", "1000", _int(0, 10_000_000),
        "Requests per second one key may make (token bucket; burst twice that); 0 turns it off. Auth on only.",
    ),
    "rate_limit_address_per_s": Setting(
        "STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S", "200", _int(0, 10_000_000),
        "Requests per second one client address may make (token bucket; burst twice that); 0 turns it off. Auth on only.",
    ),
    "query_concurrency_per_key": Setting(
        "STREAMTRACK_QUERY_CONCURRENCY_PER_KEY", "8", _int(0, 10_000),
        "Reads (`/analytics/*`, `/activities`) one key may have running at once per API replica; more get 429 "
        "with Retry-After. 0 turns it off. Auth on only.",
    ),
    "query_max_seconds": Setting(
        "STREAMTRACK_QUERY_MAX_SECONDS", "15", _int(0, 3600),
        "ClickHouse stops an API read after this long (503 query_limit_exceeded); 0: no bound.",
    ),
    "query_max_memory_bytes": Setting(
        "STREAMTRACK_QUERY_MAX_MEMORY_BYTES", str(1024**3), _int(0, 2**50),
        "Memory one API read may use in ClickHouse (503 query_limit_exceeded); 0: no bound.",
    ),
    "query_max_rows": Setting(
        "STREAMTRACK_QUERY_MAX_ROWS", "1000000000", _int(0, 2**62),
        "Rows one API read may scan in ClickHouse (422 query_too_large: narrow the range); 0: no bound.",
    ),
    "live_streams_per_key": Setting(
        "STREAMTRACK_LIVE_STREAMS_PER_KEY", "5", _int(1, 1000),
        "Live feeds (`GET /activities/stream`) one key may hold open at once per API replica; more get 429.",
    ),
    "live_buffer_events": Setting(
        "STREAMTRACK_LIVE_BUFFER_EVENTS", "1000", _int(1, 100_000),
        "Events a live feed may have waiting for its client; a client that falls further behind is dropped.",
    ),
    "live_replay_events": Setting(
        "STREAMTRACK_LIVE_REPLAY_EVENTS", "10000", _int(0, 1_000_000),
        "Recent events each API replica keeps to resume a live feed from its `Last-Event-ID`.",
    ),
    "live_heartbeat_seconds": Setting(
        "STREAMTRACK_LIVE_HEARTBEAT_SECONDS", "15", _int(1, 300),
        "A live feed sends a heartbeat after this long without events; a write to the client that takes "
        "longer drops it.",
    ),
    "cors_origins": Setting(
        "STREAMTRACK_CORS_ORIGINS", "*", _text,
        "Origins browsers may send events from (ingestion endpoints only), comma-separated, or `*`; empty: none.",
    ),
    "bot_events_per_second": Setting(
        "STREAMTRACK_BOT_EVENTS_PER_SECOND", "10", _int(0, 1_000_000),
        "A user with more events than this within one second is a bot for that second; 0 turns the check off.",
    ),
    "bot_action": Setting(
        "STREAMTRACK_BOT_ACTION", "flag", _choice("flag", "drop"),
        "Bot events (bursts, known bot user agents): `flag` stores them with is_bot=1 (left out of analytics), `drop` discards them.",
    ),
    "anonymize_ip": Setting(
        "STREAMTRACK_ANONYMIZE_IP", "off", _switch,
        "`on`: the API zeroes the last IPv4 octet (the last 80 bits of IPv6) before an event leaves it.",
    ),
    "retention_days": Setting(
        "STREAMTRACK_RETENTION_DAYS", "0", _int(0, 36_500),
        "Events older than this many days are deleted by ClickHouse (a table TTL); 0 keeps them forever.",
    ),
    # --- data lifecycle: the raw archive, replay, dead letters (docs/operations/data-lifecycle.md) ---
    "max_record_bytes": Setting(
        "STREAMTRACK_MAX_RECORD_BYTES", str(1024 * 1024), _int(1024, 64 * 1024 * 1024),
        "Largest Kafka record the worker stores (bigger ones are dead letters, reason `record_too_large`); "
        "raise it, then `streamtrack dlq replay`, to store what it refused.",
    ),
    "dlq_table": Setting(
        "STREAMTRACK_DLQ_TABLE", "on", _switch,
        "`on`: each worker process also loads the dead-letter topic into ClickHouse's `dead_letters` table "
        "(`GET /dead-letters`, `streamtrack dlq`), as consumer group STREAMTRACK_DLQ_CONSUMER_GROUP.",
    ),
    "dlq_consumer_group": Setting(
        "STREAMTRACK_DLQ_CONSUMER_GROUP", "streamtrack-dlq-loader", _name,
        "Consumer group that loads the dead-letter topic into ClickHouse.",
    ),
    "archive": Setting(
        "STREAMTRACK_ARCHIVE", "off", _switch,
        "`on`: `streamtrack dev` also runs the archive writer (`streamtrack archive` runs it alone).",
    ),
    "archive_endpoint": Setting(
        "STREAMTRACK_ARCHIVE_ENDPOINT", "http://127.0.0.1:8333", _url,
        "S3-compatible object store of the raw archive (`http(s)://host:port`; AWS: `https://s3.amazonaws.com`).",
    ),
    "archive_bucket": Setting(
        "STREAMTRACK_ARCHIVE_BUCKET", "streamtrack-archive", _bucket, "Bucket of the raw archive (created if missing)."
    ),
    "archive_prefix": Setting(
        "STREAMTRACK_ARCHIVE_PREFIX", "events", _name, "Key prefix of the archive's objects in the bucket."
    ),
    "archive_region": Setting("STREAMTRACK_ARCHIVE_REGION", "us-east-1", _name, "Region of the archive's bucket."),
    "archive_access_key": Setting(
        "STREAMTRACK_ARCHIVE_ACCESS_KEY", "", _text, "Access key of the object store (the chart reads it from a Secret)."
    ),
    "archive_secret_key": Setting(
        "STREAMTRACK_ARCHIVE_SECRET_KEY", "", _text, "Secret key of the object store (the chart reads it from a Secret)."
    ),
    "archive_consumer_group": Setting(
        "STREAMTRACK_ARCHIVE_CONSUMER_GROUP", "streamtrack-archive", _name,
        "Consumer group of the archive writers: its own, so an object store outage never holds up ClickHouse loading.",
    ),
    "archive_batch_max_events": Setting(
        "STREAMTRACK_ARCHIVE_BATCH_MAX_EVENTS", "50000", _int(1, 1_000_000),
        "Most records the archive writer gathers into one round of objects.",
    ),
    "archive_batch_max_wait_ms": Setting(
        "STREAMTRACK_ARCHIVE_BATCH_MAX_WAIT_MS", "30000", _int(1, 3_600_000),
        "Longest the archive writer gathers records before writing objects (fewer, larger objects vs. archive lag).",
    ),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    grpc_port: int
    http_keepalive_seconds: int
    forwarded_allow_ips: str
    http_header_timeout_seconds: int
    http_body_timeout_seconds: int
    http_max_header_bytes: int
    http_max_headers: int
    kafka_bootstrap_servers: str
    kafka_options: dict[str, str]
    topic: str
    dlq_topic: str
    topic_partitions: int
    topic_replication: int
    consumer_group: str
    session_timeout_ms: int
    produce_timeout_ms: int
    producer_linger_ms: int
    producer_queue_max: int
    clickhouse_url: str
    clickhouse_database: str
    clickhouse_cluster: str
    data_dir: str
    batch_max_events: int
    batch_max_wait_ms: int
    dedup_cache_events: int
    dedup_window_ms: int
    max_event_bytes: int
    max_batch_bytes: int
    max_batch_events: int
    log_level: str
    log_format: str
    access_log: bool
    worker_metrics_port: int
    traces_exporter: str
    operator_namespace: str
    operator_metrics_port: int
    operator_liveness_port: int
    auth: bool
    default_project: str
    key_cache_seconds: int
    rate_limit_key_per_s: int
    rate_limit_address_per_s: int
    query_concurrency_per_key: int
    query_max_seconds: int
    query_max_memory_bytes: int
    query_max_rows: int
    live_streams_per_key: int
    live_buffer_events: int
    live_replay_events: int
    live_heartbeat_seconds: int
    cors_origins: str
    bot_events_per_second: int
    bot_action: str
    anonymize_ip: bool
    retention_days: int
    max_record_bytes: int
    dlq_table: bool
    dlq_consumer_group: str
    archive: bool
    archive_endpoint: str
    archive_bucket: str
    archive_prefix: str
    archive_region: str
    archive_access_key: str
    archive_secret_key: str
    archive_consumer_group: str
    archive_batch_max_events: int
    archive_batch_max_wait_ms: int

    @property
    def embedded(self) -> bool:
        """True when ClickHouse runs in this process (no CLICKHOUSE_URL)."""
        return not self.clickhouse_url

    @property
    def clickhouse_path(self) -> Path:
        return Path(self.data_dir) / "clickhouse"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate every setting; raise ConfigError naming each bad variable."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field, setting in SETTINGS.items():
        raw = env.get(setting.env, setting.default)
        try:
            values[field] = setting.parse(raw)
        except ValueError as exc:
            problems.append(f"{setting.env}={raw!r}: {exc}")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    if values["max_event_bytes"] > values["max_batch_bytes"]:
        raise ConfigError(
            "invalid configuration:\n  STREAMTRACK_MAX_EVENT_BYTES must not exceed STREAMTRACK_MAX_BATCH_BYTES"
        )
    return Settings(**values).replace(**overrides) if overrides else Settings(**values)


def settings_table() -> str:
    """The configuration table of docs/configuration.md, in Markdown."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for setting in SETTINGS.values():
        default = f"`{setting.default}`" if setting.default else "(empty)"
        rows.append(f"| `{setting.env}` | {default} | {setting.doc} |")
    return "\n".join(rows)
