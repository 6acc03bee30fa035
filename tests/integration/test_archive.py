"""The raw archive on real components: Apache Kafka, the API and worker, the embedded ClickHouse,
SeaweedFS's S3 gateway.

Every event the API accepted lands in the object store exactly once, in gzip NDJSON objects
partitioned by project, date and hour and named by topic, partition and offsets; pyarrow and
ClickHouse's `s3` table function read them back. A batch written again (a retry) rewrites
the same objects; what an unfinished attempt left is removed by the next writer of the
partition. The fault test: the object store is down for 30 s under load; ClickHouse loading
goes on, the archive catches up after, and no event is missing or doubled.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.json as pa_json
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamtrack.archive import ArchiveWriter, ObjectStore, layout
from streamtrack.config import Settings, load_settings
from streamtrack.events import Event, encode_event
from streamtrack.kafka import client_config
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.lag_reader import lag_admin_client, read_lag
from streamtrack.store import EventStore
from streamtrack.store.keys import migrate_keys
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.test_security import Project, make_project

OUTAGE_S = 30.0


@dataclasses.dataclass
class Bed:
    pipeline: Pipeline
    objects: ObjectStore
    projects: list[Project]
    writer: ArchiveWriter
    thread: threading.Thread
    sent: dict[str, str] = dataclasses.field(default_factory=dict)
    """event id -> project, of every event the API accepted."""

    def send(self, project: Project, count: int, tag: str) -> list[str]:
        now = int(time.time() * 1000)
        events = [{"event_id": f"{tag}-{uuid.uuid4().hex[:12]}", "event_type": "page_view" if i % 3 else "purchase",
                   "user_id": f"u{i % 17}", "session_id": f"s{i % 5}", "url": f"https://shop.test/p/{i % 7}",
                   "timestamp": now - i * 1000, "properties": {"n": i}} for i in range(count)]
        with self.pipeline.client(headers={"Authorization": f"Bearer {project.write}"}) as client:
            response = client.post("/batch", json=events)
        assert response.status_code == 202 and response.json()["accepted"] == count, response.text
        ids = [e["event_id"] for e in events]
        self.sent.update(dict.fromkeys(ids, project.project_id))
        return ids


def start_writer(settings: Settings) -> tuple[ArchiveWriter, threading.Thread]:
    writer = ArchiveWriter(settings)
    thread = threading.Thread(target=writer.run, name="archive-writer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not writer.assigned.is_set():
        assert time.monotonic() < deadline, "the archive writer got no partitions within 30 s"
        time.sleep(0.05)
    return writer, thread


@pytest.fixture(scope="module")
def bed(broker: KafkaCluster, store: EventStore, engine_path: Path, object_store: SeaweedFS) -> Iterator[Bed]:
    env = pipeline_env(broker, store.database, engine_path.parent, STREAMTRACK_AUTH="on",
                       STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0", STREAMTRACK_RATE_LIMIT_KEY_PER_S="0",
                       STREAMTRACK_ARCHIVE_BUCKET=f"archive-{uuid.uuid4().hex[:8]}",
                       STREAMTRACK_ARCHIVE_BATCH_MAX_WAIT_MS="500", **object_store.env())
    settings = load_settings(env=env)
    running, stop = start_pipeline(settings, store)
    migrate_keys(store)
    writer, thread = start_writer(settings)
    bed = Bed(running, ObjectStore(settings), [make_project(store, "a"), make_project(store, "b")], writer, thread)
    yield bed
    bed.writer.stop()
    bed.thread.join(30)
    stop()


def archived(bed: Bed) -> list[tuple[layout.ObjectKey, list[dict[str, object]]]]:
    """Every object of the archive, read with pyarrow's JSON reader (not our decoder)."""
    found = []
    for name, _size in bed.objects.list(bed.pipeline.settings.archive_prefix + "/project="):
        key = layout.parse_object_name(bed.pipeline.settings.archive_prefix, name)
        assert key is not None, name
        table = pa_json.read_json(pa.input_stream(pa.BufferReader(bed.objects.get(name)), compression="gzip"))
        found.append((key, table.to_pylist()))
    return found


def stored_count(store: EventStore) -> int:
    [(count,)] = store.backend.query(f"SELECT count() FROM `{store.database}`.events")
    return int(count)


def test_every_accepted_event_is_archived_once_partitioned_and_named_by_offsets(bed: Bed) -> None:
    started = time.monotonic()
    for project in bed.projects:
        for _ in range(4):
            bed.send(project, 250, "first")
    total = len(bed.sent)
    bed.pipeline.wait_for(lambda: bed.writer.stats.events >= total, timeout=60, what="the archive to hold every event")
    seconds = time.monotonic() - started
    print(f"\narchive: {total} events sent and archived in {seconds:.1f} s ({total / seconds:.0f} events/s end to end), "
          f"{bed.writer.stats.objects} objects, {bed.writer.stats.bytes} bytes compressed")

    objects = archived(bed)
    ids = Counter(str(row["event_id"]) for _, rows in objects for row in rows)
    assert set(ids) == set(bed.sent) and set(ids.values()) == {1}  # each event once
    for key, rows in objects:
        assert {row["project_id"] for row in rows} == {key.project}  # partitioned by project
        for row in rows:
            date, hour = layout.hour_of(int(row["received_at"]))  # type: ignore[arg-type]
            assert (key.date, key.hour) == (date, hour)  # ... and by the hour it was received
        assert key.topic == bed.pipeline.settings.topic and key.first <= key.last
    # Per partition, the batches' offset ranges never overlap (one object per project and hour of a batch).
    ranges: dict[int, set[tuple[int, int]]] = {}
    for key, _ in objects:
        ranges.setdefault(key.partition, set()).add((key.first, key.last))
    for spans in ranges.values():
        ordered = sorted(spans)
        assert all(a[1] < b[0] for a, b in zip(ordered, ordered[1:], strict=False)), ordered


def test_clickhouse_reads_the_archive_with_its_s3_table_function(bed: Bed, object_store: SeaweedFS) -> None:
    settings = bed.pipeline.settings
    url = f"{object_store.endpoint}/{settings.archive_bucket}/{settings.archive_prefix}/project=*/date=*/hour=*/*.ndjson.gz"
    # The test's own endpoint and keys (table functions take literals, not parameters).
    [(rows, distinct, projects)] = bed.pipeline.store.backend.query(
        f"SELECT count(), uniqExact(event_id), uniqExact(project_id) FROM s3('{url}', '{object_store.access_key}',"
        f" '{object_store.secret_key}', 'JSONEachRow', 'event_id String, project_id String', 'gzip')"
    )
    assert (int(rows), int(distinct)) == (bed.writer.stats.events, bed.writer.stats.events)
    assert int(projects) == len(bed.projects)


def test_a_retry_rewrites_the_same_objects_and_a_lost_attempt_is_cleaned_up(bed: Bed) -> None:
    """A writer that starts again at a committed offset removes what an unfinished attempt wrote."""
    settings = bed.pipeline.settings
    prefix = settings.archive_prefix
    # The writer has archived everything and stops; an attempt at the next batch of partition 0
    # then died after its manifest and one object, with a range the next writer cuts otherwise.
    bed.pipeline.wait_for(lambda: _archive_lag(settings) == 0, timeout=60, what="the archive to be current")
    bed.writer.stop()
    bed.thread.join(30)
    consumer = Consumer(client_config(settings, **{"group.id": f"probe-{uuid.uuid4().hex[:6]}"}))
    start = consumer.get_watermark_offsets(TopicPartition(settings.topic, 0), timeout=10)[1]
    consumer.close()
    ghost = layout.object_name(prefix, bed.projects[0].project_id, "2026-01-01", 0, settings.topic, 0, start, start + 99_999)
    ghost_manifest = layout.manifest_name(prefix, settings.topic, 0, start, start + 99_999)
    bed.objects.put(ghost_manifest, json.dumps({"first": start, "last": start + 99_999, "objects": {ghost: 1}}).encode())
    bed.objects.put(ghost, layout.encode_objects([]))

    bed.writer, bed.thread = start_writer(settings)
    now = int(time.time() * 1000)
    producer = Producer(client_config(settings))
    for i in range(50):  # straight to partition 0, as any producer of the topic may
        event = Event(event_id=f"p0-{uuid.uuid4().hex[:10]}", event_type="x", timestamp=now, received_at=now,
                      user_id=f"p0-{i}", project_id=bed.projects[0].project_id)
        producer.produce(settings.topic, value=encode_event(event), key=event.user_id.encode(), partition=0)
        bed.sent[event.event_id] = event.project_id
    assert producer.flush(10) == 0
    bed.pipeline.wait_for(lambda: _archive_lag(settings) == 0, timeout=60, what="partition 0 archived again")
    names = {name for name, _ in bed.objects.list(prefix + "/")}
    assert ghost not in names and ghost_manifest not in names
    assert any(key and key.partition == 0 and key.first == start for key in (layout.parse_object_name(prefix, n) for n in names))
    assert bed.writer.stats.removed == 1
    assert Counter(_archived_list(bed)) == Counter(set(bed.sent))

    # The same events give the same bytes (gzip without a time), so a retry rewrites the same object.
    events = layout.decode_objects(bed.objects.get(sorted(n for n in names if n.endswith(layout.SUFFIX))[0]))
    assert layout.encode_objects(events) == layout.encode_objects([Event(**msgspec.structs.asdict(e)) for e in events])
    assert gzip.decompress(layout.encode_objects(events)).count(b"\n") == len(events)


def _archived_list(bed: Bed) -> list[str]:
    return [str(row["event_id"]) for _, rows in archived(bed) for row in rows]


def _archived_ids(bed: Bed) -> set[str]:
    return set(_archived_list(bed))


def test_object_store_down_30s_under_load_loading_goes_on_and_the_archive_catches_up(
    bed: Bed, object_store: SeaweedFS
) -> None:
    settings = bed.pipeline.settings
    store = bed.pipeline.store
    stop_load = threading.Event()
    errors: list[str] = []

    def load() -> None:  # up to ~200 events/s through the API, in batches of 20, until told to stop
        turn = 0
        while not stop_load.is_set():
            try:
                bed.send(bed.projects[turn % 2], 20, "load")
            except AssertionError as exc:
                errors.append(str(exc))
            turn += 1
            stop_load.wait(0.1)

    base = len(bed.sent)
    loader = threading.Thread(target=load, name="load", daemon=True)
    loader.start()
    bed.pipeline.wait_for(lambda: len(bed.sent) > base + 500, timeout=30, what="load before the outage")
    object_store.stop()
    down_at = time.monotonic()
    try:
        # While the store is down, ClickHouse loading keeps up: what the API accepted is stored.
        during = len(bed.sent)
        bed.pipeline.wait_for(lambda: len(bed.sent) > during + 1000, timeout=OUTAGE_S - 10, what="load during the outage")
        target = len(bed.sent)
        bed.pipeline.wait_for(lambda: stored_count(store) >= target, timeout=OUTAGE_S - 10,
                              what="ClickHouse to store what was accepted during the outage")
        stored_after = time.monotonic() - down_at
        lag_during = _archive_lag(settings)
        assert lag_during > 0 and bed.writer.stats.retries > 0  # the archive is behind, retrying
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    finally:
        restart_at = time.monotonic()
        object_store.start()
    back_at = time.monotonic()
    stop_load.set()
    loader.join(30)
    assert not errors, errors[:3]
    bed.pipeline.wait_for(lambda: _archive_lag(settings) == 0, timeout=120, what="the archive to catch up")
    caught_up = time.monotonic() - back_at
    assert Counter(_archived_list(bed)) == Counter(set(bed.sent))  # none missing, none twice
    assert stored_count(store) == len(bed.sent)
    print(f"\nfault: object store down {OUTAGE_S:.0f} s under load ({len(bed.sent) - base} events); ClickHouse had what was"
          f" accepted {stored_after:.1f} s into the outage; archive lag then {lag_during}; the store took"
          f" {back_at - restart_at:.1f} s to start again, the archive caught up {caught_up:.1f} s after; every event archived once")


_ADMINS: dict[str, Any] = {}


def _archive_lag(settings: Settings) -> int:
    """The archive group's lag as Kafka reports it (what the pipeline panel shows)."""
    admin = _ADMINS.get(settings.kafka_bootstrap_servers)
    if admin is None:
        admin = _ADMINS[settings.kafka_bootstrap_servers] = lag_admin_client(client_config(settings))
    return read_lag(admin, settings.archive_consumer_group, settings.topic, timeout=5).total
