"""`GET /pipeline/status`: is the pipeline keeping up? The dashboard's health panel polls it.

Four numbers from their sources of truth: the ingest rate from ClickHouse (events received
in the last minute), the workers' consumer lag and the dead-letter count from Kafka's
offsets. A source that does not answer makes its `*_ok` false and its numbers null, with
the reason in `errors`: a status report always answers 200, since it exists to show
failures. Readings are kept for a second, so many open dashboards cost one reading.

Whose figures: a project's read key gets its project's ingest rate and the pipeline's health;
lag and dead letters are the instance's (one topic for every project), so they are null for
it and shown only to an admin key (`sta_…`), which also gets every project's ingest rate;
with auth off the one open project is the instance.

Caveat with `streamtrack dev --broker tansu`: Tansu reports a partition's high watermark as
the base offset of its last record batch + 1, so lag and dead letters can under-count there
until the next batch lands. Apache Kafka (production, and dev's default) reports exact ones.
"""

from __future__ import annotations

import asyncio
import threading
import time

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency

from streamtrack.api.auth import project_of, sees_the_instance
from streamtrack.api.services import Services
from streamtrack.config import Settings
from streamtrack.errors import RetryableError
from streamtrack.kafka.admin import client_config
from streamtrack.kafka.lag_reader import LagAdminClient, lag_admin_client, read_lag
from streamtrack.kafka.offsets import end_offsets, existing_partitions
from streamtrack.store import EventStore
from streamtrack.store.ingest_rate import WINDOW_S, ingest_rate

KAFKA_TIMEOUT_S = 2.0
CACHE_S = 1.0


class PipelineStatus(msgspec.Struct):
    ingest_rate_per_s: float | None
    """Distinct events received in the last minute, per second (null: ClickHouse did not answer)."""
    consumer_lag: int | None
    """Records in the events topic the workers have not committed yet (null: Kafka did not answer,
    or the key is a project's: this figure is the instance's, for an admin key)."""
    dead_letters: int | None
    """Records ever written to the dead-letter topic (its high watermarks); null as consumer_lag."""
    broker_ok: bool
    store_ok: bool
    errors: dict[str, str] = {}
    """Why a source is not ok, by source ("broker", "store")."""
    archive_lag: int | None = None
    """Records of the events topic the archive writers have not committed yet (null: the archive
    is off, Kafka did not answer, or the key is a project's, as consumer_lag)."""


class StatusReader:
    """Reads the status; one per app, holding one Kafka admin client for all requests."""

    def __init__(self, settings: Settings, store: EventStore) -> None:
        self.settings = settings
        self.store = store
        self._admin: LagAdminClient | None = None
        self._lock = threading.Lock()
        self._cached: dict[str | None, tuple[float, PipelineStatus]] = {}
        """Per project: the ingest rate counts the caller's project's events only (Kafka's figures are the pipeline's)."""

    async def read(self, project_id: str | None = None) -> PipelineStatus:
        """The instance's figures (`project_id` None), or one project's rate and the pipeline's health."""
        cached = self._cached.get(project_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        (lag, letters, broker_error), (rate, store_error) = await asyncio.gather(
            asyncio.to_thread(self._read_kafka), asyncio.to_thread(self._read_store, project_id)
        )
        errors = {name: error for name, error in (("broker", broker_error), ("store", store_error)) if error}
        archive_lag = await asyncio.to_thread(self._read_archive_lag) if self.settings.archive and lag is not None else None
        status = PipelineStatus(
            ingest_rate_per_s=rate, consumer_lag=lag, dead_letters=letters,
            broker_ok=broker_error is None, store_ok=store_error is None, errors=errors, archive_lag=archive_lag,
        )
        if project_id is not None:  # the instance's figures are not a project's to see
            status = msgspec.structs.replace(status, consumer_lag=None, dead_letters=None, archive_lag=None)
        if len(self._cached) > 1000:  # bounded: projects are few, but never trust that
            self._cached.clear()
        self._cached[project_id] = (time.monotonic(), status)
        return status

    def _read_kafka(self) -> tuple[int | None, int | None, str | None]:
        settings = self.settings
        try:
            with self._lock:
                if self._admin is None:
                    self._admin = lag_admin_client(client_config(settings))  # never re-creates a topic
            lag = read_lag(self._admin, settings.consumer_group, settings.topic, timeout=KAFKA_TIMEOUT_S)
            if not lag.exists:
                return None, None, f"topic {settings.topic!r} does not exist"
            dlq_partitions = existing_partitions(self._admin, settings.dlq_topic, KAFKA_TIMEOUT_S)
            letters = 0
            if dlq_partitions:
                ends = end_offsets(self._admin, settings.dlq_topic, KAFKA_TIMEOUT_S, of=dlq_partitions)
                letters = sum(ends.values())
            return lag.total, letters, None
        except RetryableError as exc:
            return None, None, exc.message

    def _read_archive_lag(self) -> int | None:
        """The archive writers' group lag (STREAMTRACK_ARCHIVE on); None when Kafka does not answer."""
        try:
            lag = read_lag(self._admin, self.settings.archive_consumer_group, self.settings.topic, timeout=KAFKA_TIMEOUT_S)  # type: ignore[arg-type]
        except RetryableError:
            return None
        return lag.total if lag.exists else None

    def _read_store(self, project_id: str | None = None) -> tuple[float | None, str | None]:
        try:
            return round(ingest_rate(self.store, WINDOW_S, project_id), 2), None
        except RetryableError as exc:
            return None, exc.message


@get("/pipeline/status", tags=["dashboard"], summary="Ingest rate, consumer lag, dead letters, health")
async def pipeline_status(request: Request, services: NamedDependency[Services], state: State) -> PipelineStatus:
    """Always 200: a source that fails is reported as not ok, with its reason in `errors`.

    A read key: its project's ingest rate (lag and dead letters null); an admin key: the instance's figures.
    """
    reader = state.get("pipeline_status_reader")
    if reader is None:
        reader = state["pipeline_status_reader"] = StatusReader(services.settings, services.store)
    return await reader.read(None if sees_the_instance(request) else project_of(request))
