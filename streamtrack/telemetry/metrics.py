"""Prometheus metrics: every metric object of StreamTrack in one place, and the worker's port.

Conventions for anyone adding metrics (operator, pipeline status...): define them here,
names prefixed `streamtrack_`, base units (seconds, bytes), counters ending in `_total`,
labels only with a small fixed set of values (a reason code, never a user or event id).
They live in prometheus-client's default registry, which also carries the process and
Python metrics; the API serves it at `/metrics`, the worker on its own small HTTP port
(STREAMTRACK_WORKER_METRICS_PORT), so one scrape config covers both.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

log = structlog.get_logger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000)

# --- API ---
HTTP_REQUESTS = Counter(
    "streamtrack_http_requests",
    "HTTP requests answered, by method, route template and status (499: the client left mid-request).",
    ["method", "route", "status"],
)
HTTP_REFUSED = Counter(
    "streamtrack_http_refused",
    "Requests refused before the app saw them, by reason: header_timeout, headers_too_large, too_many_headers.",
    ["reason"],
)
HTTP_LATENCY = Histogram(
    "streamtrack_http_request_seconds", "Time to answer an HTTP request.", ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
# `project`: the key's project (only projects with keys exist, so the label stays bounded);
# '' for a refusal before any key was checked. The projects dashboard reads these two.
EVENTS_ACCEPTED = Counter(
    "streamtrack_events_accepted", "Events acknowledged by the broker and answered 202, by project.", ["project"]
)
EVENTS_REJECTED = Counter(
    "streamtrack_events_rejected",
    "Events refused, by reason: an error code (invalid_event, malformed_json, payload_too_large...) "
    "or broker_unavailable (503), and project. A body refused as a whole counts once.",
    ["reason", "project"],
)
PRODUCE_LATENCY = Histogram(
    "streamtrack_produce_seconds", "Time from handing events to the producer to the broker's last acknowledgement.",
    buckets=LATENCY_BUCKETS,
)
PRODUCER_QUEUE = Gauge(
    "streamtrack_producer_queue_events", "Events handed to the producer and not yet acknowledged by the broker."
)

# --- worker ---
BATCHES = Counter("streamtrack_worker_batches", "Batches the worker stored and committed.")
BATCH_SIZE = Histogram("streamtrack_worker_batch_events", "Records per batch.", buckets=BATCH_SIZE_BUCKETS)
INSERT_LATENCY = Histogram(
    "streamtrack_store_insert_seconds", "Time of one ClickHouse insert of a batch.", buckets=LATENCY_BUCKETS
)
INSERTED_ROWS = Counter("streamtrack_store_inserted_rows", "Events inserted into ClickHouse.")
DUPLICATES = Counter(
    "streamtrack_worker_duplicates", "Events dropped before the insert because their event_id was stored already."
)
DEDUP_LOOKUPS = Counter(
    "streamtrack_worker_dedup_lookups", "ClickHouse lookups the worker made to tell new events from copies."
)
DEAD_LETTERS = Counter("streamtrack_dead_letters", "Records sent to the dead-letter topic, by reason.", ["reason"])
STORE_RETRIES = Counter("streamtrack_worker_retries", "Failed attempts to store a batch (each retried with backoff).")

# --- keys, rate limits, bots (streamtrack.api.auth, streamtrack.auth.bots) ---
AUTH_FAILURES = Counter(
    "streamtrack_auth_failures", "Requests refused by the key check, by reason: missing_key, invalid_key, wrong_key_kind.",
    ["reason"],
)
RATE_LIMITED = Counter("streamtrack_rate_limited", "Requests answered 429, by bucket: key, address, or queries (a key's reads at once).", ["scope"])
LIVE_STREAMS = Gauge("streamtrack_live_streams", "Live feeds (GET /activities/stream) open on this replica.")
LIVE_DROPPED = Counter(
    "streamtrack_live_dropped", "Live feeds dropped because their client fell more than STREAMTRACK_LIVE_BUFFER_EVENTS behind."
)
BOT_EVENTS = Counter(
    "streamtrack_worker_bot_events", "Events the bot filter caught, by what it did with them: flagged or dropped.",
    ["action"],
)
CONSUMPTION_PAUSED = Gauge(
    "streamtrack_worker_paused", "1 while the worker has paused consumption because ClickHouse is unavailable."
)
CONSUMER_LAG = Gauge(
    "streamtrack_consumer_lag", "Records not yet consumed in the partitions assigned to this worker."
)

# --- archive writer and dead letters (streamtrack.archive, streamtrack.deadletters) ---
ARCHIVE_LAG = Gauge(
    "streamtrack_archive_lag", "Records of the events topic not yet archived in the partitions assigned to this writer."
)
ARCHIVED_EVENTS = Counter("streamtrack_archived_events", "Events written to the object store (committed batches).")
ARCHIVED_OBJECTS = Counter("streamtrack_archived_objects", "Objects written to the object store (committed batches).")
ARCHIVED_BYTES = Counter("streamtrack_archived_bytes", "Compressed bytes written to the object store.")
ARCHIVE_RETRIES = Counter("streamtrack_archive_retries", "Failed attempts to archive a batch (each retried with backoff).")
DEAD_LETTERS_LOADED = Counter(
    "streamtrack_dead_letters_loaded", "Dead-letter records loaded into ClickHouse's dead_letters table."
)
DEAD_LETTERS_LAG = Gauge(
    "streamtrack_dead_letters_lag",
    "Records of the dead-letter topic not yet loaded into ClickHouse in the partitions assigned to this loader.",
)


def metrics_text() -> tuple[bytes, str]:
    """The exposition of every metric of this process, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A scraper that hung up mid-answer is nothing to report; anything else gets the traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class MetricsServer:
    """A small HTTP server for processes without an API (the worker): `/metrics`, `/healthz`.

    `healthy` says whether the process still makes progress; `/healthz` answers 503
    otherwise, so Kubernetes restarts a stuck worker.
    """

    def __init__(self, host: str, port: int, healthy: Callable[[], bool] = lambda: True) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] == "/metrics":
                    body, content_type = metrics_text()
                    self._answer(200, body, content_type)
                elif self.path.split("?")[0] == "/healthz":
                    ok = healthy()
                    self._answer(200 if ok else 503, b'{"status":"ok"}' if ok else b'{"status":"stuck"}',
                                 "application/json")
                else:
                    self._answer(404, b'{"status":404,"code":"not_found","message":"try /metrics or /healthz"}',
                                 "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # scrapes every few seconds would drown the worker's own log lines

        self._server = _QuietServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics_server(host: str, port: int, healthy: Callable[[], bool]) -> MetricsServer | None:
    """The worker's metrics port, or None (port 0, or taken: the worker runs on without it)."""
    if not port:
        return None
    try:
        server = MetricsServer(host, port, healthy).start()
    except OSError as exc:
        log.warning("metrics port unavailable; running without /metrics", host=host, port=port, error=str(exc))
        return None
    log.info("metrics listening", url=server.url)
    return server
