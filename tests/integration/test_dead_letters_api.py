"""Dead letters you can query and replay, on the real pipeline (Apache Kafka, the worker, ClickHouse).

The dead letters' round trip: a poison record arrives (bigger than the worker's record limit),
it is listed with its reason (`GET /dead-letters`, `streamtrack dlq list`), the rule is fixed
(STREAMTRACK_MAX_RECORD_BYTES raised, the worker restarted with it), the record is replayed
(`streamtrack dlq replay`) and stored once; a record that is still bad stays, with its new
reason; replaying again changes nothing. Who sees what: a read key its project's, an admin
key also the records with no project.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from streamtrack import cli
from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import Settings, load_settings
from streamtrack.deadletters import DeadLetterLoader, replay_letters
from streamtrack.deadletters.command import run as run_dlq
from streamtrack.events import Event, encode_event
from streamtrack.kafka import client_config
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from streamtrack.store import deadletters as table
from streamtrack.store.keys import add_key, migrate_keys
from streamtrack.worker import Worker
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline
from tests.integration.test_security import Project, make_project

STRICT_BYTES = 2048
FIXED_BYTES = 65536


@dataclasses.dataclass
class Bed:
    pipeline: Pipeline
    env: dict[str, str]
    a: Project
    b: Project
    admin: str
    big_id: str
    bad_id: str
    workers: list[tuple[Worker, threading.Thread]]

    def restart_worker(self, settings: Settings) -> Worker:
        """The fix's deployment: the worker leaves the group, one with the new settings joins."""
        for worker, thread in self.workers:
            worker.stop()
            thread.join(30)
        self.workers = [_run_worker(settings, self.pipeline.store)]
        return self.workers[0][0]


def _run_worker(settings: Settings, store: EventStore) -> tuple[Worker, threading.Thread]:
    worker = Worker(settings, store)
    thread = threading.Thread(target=worker.run, name="dlq-test-worker", daemon=True)
    thread.start()
    assert worker.assigned.wait(30), "the worker got no partitions within 30 s"
    return worker, thread


def _count(store: EventStore, event_id: str) -> int:
    [(count,)] = store.backend.query(f"SELECT count() FROM `{store.database}`.events WHERE event_id = {{id:String}}",
                                     {"id": event_id})
    return int(count)


@pytest.fixture(scope="module")
def bed(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[Bed]:
    env = pipeline_env(broker, store.database, engine_path.parent, STREAMTRACK_AUTH="on",
                       STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0", STREAMTRACK_RATE_LIMIT_KEY_PER_S="0",
                       STREAMTRACK_MAX_RECORD_BYTES=str(STRICT_BYTES))
    settings = load_settings(env=env)
    running, stop_api = start_pipeline(settings, store, with_worker=False)
    migrate_keys(store)
    a, b = make_project(store, "a"), make_project(store, "b")
    admin = new_key(KeyKind.ADMIN)
    add_key(store, a.project_id, admin)
    workers = [_run_worker(settings, store)]
    loader = DeadLetterLoader(settings, store)
    loader_thread = threading.Thread(target=loader.run, name="dlq-loader", daemon=True)
    loader_thread.start()

    now = time.time_ns() // 1_000_000
    big_id, bad_id = f"big-{uuid.uuid4().hex[:8]}", f"bad-{uuid.uuid4().hex[:8]}"
    big = encode_event(Event(event_id=big_id, event_type="upload", timestamp=now, received_at=now, user_id="u1",
                             project_id=a.project_id, properties={"blob": "x" * 3000}))
    # Too big now; once the limit is raised, still no event (no event_type): the reason changes.
    bad = f'{{"project_id": "{a.project_id}", "event_id": "{bad_id}", "padding": "{"y" * 3000}"}}'.encode()
    producer = Producer(client_config(settings))  # another producer than the API: the topic is open to it
    producer.produce(settings.topic, key=b"u1", value=big, headers=[("origin", b"batch-import")])
    producer.produce(settings.topic, key=b"u2", value=bad)
    producer.produce(settings.topic, key=b"junk", value=b"\x00\xffnot json at all")
    assert producer.flush(10) == 0
    running.wait_for(lambda: loader.loaded >= 3, timeout=60, what="three dead letters loaded into ClickHouse")
    bed = Bed(running, env, a, b, admin.secret, big_id, bad_id, workers)
    yield bed
    loader.stop()
    for worker, thread in bed.workers:
        worker.stop()
        thread.join(30)
    loader_thread.join(30)
    stop_api()


def dlq(settings: Settings, *argv: str) -> int:
    """`streamtrack dlq ...` as the command line parses it, in this process (the embedded engine
    is this process's: another could not open it) and without the CLI's logging set-up."""
    return run_dlq(cli._parser().parse_args(["dlq", *argv]), settings)


def _get(bed: Bed, key: str, **params: object) -> httpx.Response:
    with bed.pipeline.client(headers={"Authorization": f"Bearer {key}"}) as client:
        return client.get("/dead-letters", params=params)


def test_a_read_key_lists_its_projects_dead_letters_with_reason_error_and_original(bed: Bed) -> None:
    page = _get(bed, bed.a.read).json()
    by_event = {item["event_id"]: item for item in page["data"]}
    assert set(by_event) == {bed.big_id, bed.bad_id}  # not the junk: it names no project
    big = by_event[bed.big_id]
    assert big["reason"] == "record_too_large" and f"at most {STRICT_BYTES}" in big["error"]
    assert big["project_id"] == bed.a.project_id and big["status"] == "dead" and big["replays"] == 0
    assert big["topic"] == bed.pipeline.settings.topic and big["offset"] >= 0 and big["partition"] >= 0
    assert bed.big_id in big["value_text"] and big["key_base64"] == "dTE="  # b"u1"
    assert {"name": "origin", "value_base64": "YmF0Y2gtaW1wb3J0"} in big["headers"]  # original headers kept
    assert big["dead_at"].endswith("Z")
    assert _get(bed, bed.b.read).json()["data"] == []  # another project's key sees none of them
    assert _get(bed, bed.a.read, project=bed.b.project_id).status_code == 403


def test_records_with_no_project_only_for_an_admin_and_filters_paginate(bed: Bed) -> None:
    everything = _get(bed, bed.admin).json()["data"]
    assert len(everything) == 3
    [junk] = [item for item in everything if item["project_id"] is None]
    assert junk["reason"] == "undecodable" and junk["value_text"] is None and junk["value_base64"]
    assert [i["id"] for i in _get(bed, bed.admin, project="").json()["data"]] == [junk["id"]]
    assert [i["reason"] for i in _get(bed, bed.admin, reason="undecodable").json()["data"]] == ["undecodable"]
    assert _get(bed, bed.admin, **{"from": "2300-01-01T00:00:00Z"}).status_code == 400
    assert _get(bed, bed.admin, **{"from": int(time.time()) + 3600}).json()["data"] == []
    assert _get(bed, bed.admin, status="nope").json()["field"] == "status"
    first = _get(bed, bed.admin, limit=2).json()
    second = _get(bed, bed.admin, limit=2, cursor=first["next_cursor"]).json()
    assert len(first["data"]) == 2 and len(second["data"]) == 1 and second["next_cursor"] is None
    assert {i["id"] for i in first["data"] + second["data"]} == {i["id"] for i in everything}
    with bed.pipeline.client(headers={"Authorization": f"Bearer {bed.a.read}"}) as client:
        assert client.get("/dead-letters/counts").json() == {"counts": {"record_too_large": 2}, "total": 2}
        assert client.get("/dead-letters", params={"cursor": "garbage"}).json()["field"] == "cursor"


def test_fixed_rule_then_replay_stores_the_record_once_and_the_still_bad_one_stays(
    bed: Bed, store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = bed.pipeline
    assert pipeline.worker is None
    # The fix: a raised limit, the worker restarted with it (the strict one leaves the group first).
    fixed_env = {**bed.env, "STREAMTRACK_MAX_RECORD_BYTES": str(FIXED_BYTES)}
    fixed = load_settings(env=fixed_env)
    worker = bed.restart_worker(fixed)

    assert dlq(fixed, "list", "--project", bed.a.project_id) == 0
    listed = capsys.readouterr().out
    assert listed.count("record_too_large") == 2 and "2 dead letters" in listed

    assert dlq(fixed, "replay", "--project", bed.a.project_id) == 0
    out = capsys.readouterr().out
    assert "replayed 1 to" in out and "1 still dead" in out and "invalid_event" in out
    pipeline.wait_for(lambda: _count(store, bed.big_id) == 1, timeout=60, what="the replayed event stored")

    letters = {letter.event_id: letter for letter in table.select(store, table.Filter(status=None), limit=100)}
    assert letters[bed.big_id].status == "replayed" and letters[bed.big_id].replays == 1
    assert (letters[bed.bad_id].status, letters[bed.bad_id].reason) == ("dead", "invalid_event")
    assert "event_type" in letters[bed.bad_id].error or "missing" in letters[bed.bad_id].error

    # Idempotent: a second replay produces nothing; a lost row update (the old row replayed
    # again) produces a copy that the worker drops. Either way the event is stored once.
    assert dlq(fixed, "replay", "--project", bed.a.project_id) == 0
    assert "replayed 0 to" in capsys.readouterr().out
    stale = dataclasses.replace(letters[bed.big_id], status="dead")
    assert len(replay_letters(fixed, store, [stale]).replayed) == 1
    duplicates_before = worker.stats.duplicates
    pipeline.wait_for(lambda: worker.stats.duplicates > duplicates_before, timeout=60,
                      what="the worker to drop the replayed copy")
    assert _count(store, bed.big_id) == 1
    assert _get(bed, bed.a.read).json()["data"][0]["event_id"] == bed.bad_id  # only the still-bad one is dead

    assert dlq(fixed, "show", letters[bed.bad_id].id) == 0
    shown = capsys.readouterr().out
    assert "invalid_event" in shown and bed.bad_id in shown and "replays: 2" in shown
