"""`streamtrack replay` on real components: a project's ClickHouse data wiped, replayed from the
archive (SeaweedFS) through Kafka and the worker, and every analytics answer is what it was.

Replaying twice changes nothing (the worker drops what it holds); a dry run produces nothing;
a time range selects by receipt time. Two projects: the other one is never touched.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamtrack import cli
from streamtrack.archive import ArchiveWriter
from streamtrack.archive.reader import Selection
from streamtrack.config import Settings, load_settings
from streamtrack.kafka import client_config
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.lag_reader import lag_admin_client, read_lag
from streamtrack.replay import replay
from streamtrack.replay import run as run_replay
from streamtrack.store import EventStore
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import Analytics
from streamtrack.store.keys import migrate_keys
from streamtrack.store.scoped import project_store
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.test_security import Project, make_project

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
STEPS = ["page_view", "add_to_cart", "purchase"]


class Bed:
    def __init__(self, pipeline: Pipeline, projects: list[Project], writer: ArchiveWriter) -> None:
        self.pipeline, self.projects, self.writer = pipeline, projects, writer
        self.settings: Settings = pipeline.settings
        self.store: EventStore = pipeline.store
        self.now = int(time.time() * 1000)
        self.counts: dict[str, int] = {}
        self._admin = lag_admin_client(client_config(self.settings))

    def lag(self, group: str) -> int:
        return read_lag(self._admin, group, self.settings.topic, timeout=5).total

    def settled(self) -> None:
        """Wait until the worker and the archive have read everything in the topic."""
        self.pipeline.wait_for(lambda: self.lag(self.settings.consumer_group) == 0 and
                               self.lag(self.settings.archive_consumer_group) == 0, timeout=90,
                               what="the worker and the archive to be current")

    def rows(self, project: str) -> int:
        [(count,)] = self.store.backend.query(
            f"SELECT count() FROM `{self.store.database}`.events WHERE project_id = {{p:String}}", {"p": project})
        return int(count)


def seed(bed: Bed, project: Project, users: int) -> int:
    """Three days of a shop's events: sessions, pages, channels, funnels, returning users."""
    events = []
    for user in range(users):
        for day in range(3):
            if (user + day) % 4 == 3:
                continue  # not every user comes back every day: retention has something to say
            base = bed.now - (2 - day) * DAY_MS - (user % 12) * HOUR_MS
            for step, kind in enumerate(STEPS[: 1 + (user * 7 + day) % 3]):
                events.append({
                    "event_id": f"{project.project_id}-{user}-{day}-{step}-{uuid.uuid4().hex[:6]}", "event_type": kind,
                    "user_id": f"user-{user}", "session_id": f"s-{user}-{day}", "channel": ("web", "ios", "email")[user % 3],
                    "url": f"https://shop.test/{kind}/{user % 4}", "timestamp": base + step * 60_000,
                    "properties": {"plan": ("free", "pro")[user % 2]},
                })
    with bed.pipeline.client(headers={"Authorization": f"Bearer {project.write}"}) as client:
        for start in range(0, len(events), 500):
            chunk = events[start:start + 500]
            response = client.post("/batch", json=chunk)
            assert response.status_code == 202 and response.json()["accepted"] == len(chunk), response.text
    return len(events)


def answers(bed: Bed, project: str) -> dict[str, Any]:
    """Every analytics answer of the project (streamtrack.store.analytics_reader), over the seeded days."""
    reader = Analytics(project_store(bed.store, project))
    span = Filter(start_ms=bed.now - 4 * DAY_MS, end_ms=bed.now + HOUR_MS)
    day = bed.now - bed.now % DAY_MS
    return {
        "overview": reader.overview(now_ms=bed.now),
        "timeseries": reader.timeseries(span, interval="hour"),
        "timeseries_by_type": reader.timeseries(span, interval="day", group_by="event_type"),
        "breakdown_channel": reader.breakdown(span, by="channel", limit=10),
        "breakdown_url": reader.breakdown(span, by="url", limit=20),
        "top_pages": reader.top_pages(span, limit=10),
        "active_users": reader.active_users(now_ms=bed.now, window_minutes=24 * 60, day_ms=day),
        "sessions": reader.sessions(span),
        "funnel": reader.funnel(span, steps=STEPS, window_seconds=3600),
        "retention": reader.retention(span, period="day", periods=3),
    }


@pytest.fixture(scope="module")
def bed(broker: KafkaCluster, store: EventStore, engine_path: Path, object_store: SeaweedFS) -> Iterator[Bed]:
    env = pipeline_env(broker, store.database, engine_path.parent, STREAMTRACK_AUTH="on",
                       STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0", STREAMTRACK_RATE_LIMIT_KEY_PER_S="0",
                       STREAMTRACK_ARCHIVE_BUCKET=f"replay-{uuid.uuid4().hex[:8]}",
                       STREAMTRACK_ARCHIVE_BATCH_MAX_WAIT_MS="500", **object_store.env())
    settings = load_settings(env=env)
    running, stop = start_pipeline(settings, store)
    migrate_keys(store)
    writer = ArchiveWriter(settings)
    thread = threading.Thread(target=writer.run, name="archive-writer", daemon=True)
    thread.start()
    bed = Bed(running, [make_project(store, "shop"), make_project(store, "other")], writer)
    for project, users in zip(bed.projects, (400, 40), strict=True):
        bed.counts[project.project_id] = seed(bed, project, users)
    bed.settled()
    yield bed
    writer.stop()
    thread.join(30)
    stop()


def _end_offsets(settings: Settings) -> dict[int, int]:
    consumer = Consumer(client_config(settings, **{"group.id": f"probe-{uuid.uuid4().hex[:6]}"}))
    try:
        meta = consumer.list_topics(settings.topic, timeout=10).topics[settings.topic]
        return {p: consumer.get_watermark_offsets(TopicPartition(settings.topic, p), timeout=10)[1] for p in meta.partitions}
    finally:
        consumer.close()


def test_wiped_project_replayed_from_the_archive_answers_as_before_and_twice_changes_nothing(bed: Bed) -> None:
    shop, other = (p.project_id for p in bed.projects)
    assert bed.rows(shop) == bed.counts[shop] and bed.writer.stats.events == sum(bed.counts.values())
    before, before_other = answers(bed, shop), answers(bed, other)
    assert before["overview"].total_events == bed.counts[shop] and before["funnel"].steps[2].users > 0

    bed.store.backend.command(f"DELETE FROM `{bed.store.database}`.events WHERE project_id = {{p:String}}", {"p": shop})
    assert bed.rows(shop) == 0 and answers(bed, shop) != before

    dry = replay(bed.settings, Selection(project=shop), dry_run=True)
    assert dry.events == bed.counts[shop] and dry.by_project == {shop: bed.counts[shop]}
    ends = _end_offsets(bed.settings)
    started = time.monotonic()
    summary = replay(bed.settings, Selection(project=shop))
    assert summary.events == bed.counts[shop] and set(summary.by_project) == {shop}
    assert sum(_end_offsets(bed.settings).values()) - sum(ends.values()) == bed.counts[shop]  # the dry run produced nothing
    bed.pipeline.wait_for(lambda: bed.rows(shop) == bed.counts[shop], timeout=120, what="the replayed events stored")
    stored_in = time.monotonic() - started
    bed.settled()
    assert answers(bed, shop) == before
    assert answers(bed, other) == before_other
    print(f"\nreplay: {summary.events} events from {summary.objects} objects ({summary.bytes} bytes) produced in"
          f" {summary.seconds:.2f} s ({summary.events_per_s:.0f} events/s); all stored {stored_in:.1f} s after the start")

    again = replay(bed.settings, Selection(project=shop))
    assert again.events == bed.counts[shop]
    bed.settled()
    assert bed.rows(shop) == bed.counts[shop] and answers(bed, shop) == before  # twice changes nothing
    assert bed.rows(other) == bed.counts[other]
    assert bed.writer.stats.events == sum(bed.counts.values())  # what came from the archive is not archived again


def test_replay_command_selects_by_time_and_prints_a_summary(bed: Bed, capsys: pytest.CaptureFixture[str]) -> None:
    shop = bed.projects[0].project_id
    everything = replay(bed.settings, Selection(), dry_run=True)
    assert everything.by_project == {p: n for p, n in bed.counts.items()}
    # Receipt times: every event was received within this test module, none before it began.
    assert replay(bed.settings, Selection(project=shop, until_ms=bed.now - HOUR_MS), dry_run=True).events == 0
    assert replay(bed.settings, Selection(project=shop, since_ms=bed.now - HOUR_MS), dry_run=True).events == bed.counts[shop]
    args = cli._parser().parse_args(["replay", "--project", shop, "--since", str(bed.now - HOUR_MS), "--dry-run", "--no-progress"])
    assert run_replay(args, bed.settings) == 0
    out = capsys.readouterr().out
    assert f"would replay {bed.counts[shop]} events" in out and f"project {shop}: {bed.counts[shop]} events" in out
    bad = cli._parser().parse_args(["replay", "--since", "yesterday", "--no-progress"])
    assert run_replay(bad, bed.settings) == 2
