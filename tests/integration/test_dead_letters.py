"""Records the worker cannot store go to the dead-letter topic with the reason; the rest flow on;
the loader puts them in the dead_letters table, also across a ClickHouse outage."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from streamtrack.config import load_settings
from streamtrack.deadletters import DeadLetterLoader
from streamtrack.events import Event, encode_event
from streamtrack.kafka import client_config
from streamtrack.kafka.admin import ensure_topics
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from tests.fixtures.faults import FlakyBackend, wait_for
from tests.fixtures.pipeline import Pipeline, pipeline_env


def test_poison_records_are_dead_lettered_with_reasons(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    now = time.time_ns() // 1_000_000
    good_id = f"good-{uuid.uuid4().hex[:6]}"
    poison = {
        b"\x00\xffgarbage": "undecodable",
        b'{"hello": "world"}': "invalid_event",
        b'{"event_id":"e","event_type":"x","timestamp":"soon","received_at":1}': "invalid_event",
        encode_event(Event(event_id="old", event_type="x", timestamp=5, received_at=now, user_id="u")): "invalid_event",
        encode_event(Event(event_id="blank", event_type=" ", timestamp=now, received_at=now, user_id="u")): "invalid_event",
    }
    producer = Producer(client_config(settings))
    for value in poison:
        producer.produce(settings.topic, value=value, key=b"poison", headers=[("origin", b"test")])
    producer.produce(settings.topic, key=b"u", value=encode_event(
        Event(event_id=good_id, event_type="ok", timestamp=now, received_at=now, user_id="u")
    ))
    producer.produce(settings.topic, key=b"u", value=None)  # a tombstone is not an event either
    assert producer.flush(10) == 0

    pipeline.wait_for(lambda: any(e.event_id == good_id for e in pipeline.store.activities(limit=10_000)),
                      what="the good event after the poison")

    consumer = Consumer(client_config(settings, **{"group.id": f"dlq-reader-{uuid.uuid4().hex[:6]}",
                                                   "auto.offset.reset": "earliest", "session.timeout.ms": 6000}))
    consumer.subscribe([settings.dlq_topic])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < len(poison) + 1 and time.monotonic() < deadline:
        letters.extend(m for m in consumer.consume(100, 0.5) if m.error() is None)
    consumer.close()

    assert len(letters) == len(poison) + 1
    by_value = {m.value(): dict(m.headers()) for m in letters}
    for value, reason in poison.items():
        headers = by_value[value]
        assert headers["streamtrack-dlq-reason"].decode() == reason
        assert headers["streamtrack-dlq-error"]  # the detail a person reads
        assert headers["streamtrack-dlq-topic"].decode() == settings.topic
        assert headers["origin"] == b"test"  # the original headers are kept
    assert by_value[None]["streamtrack-dlq-reason"] == b"undecodable"
    old = by_value[encode_event(Event(event_id="old", event_type="x", timestamp=5, received_at=now, user_id="u"))]
    assert b"2000-01-01" in old["streamtrack-dlq-error"]


def test_the_loader_pauses_while_clickhouse_is_down_and_then_loads_every_letter_once(
    broker: KafkaCluster, store: EventStore, tmp_path: Path
) -> None:
    """ClickHouse down: the loader keeps its batch, pauses consumption and commits nothing
    (`worker.group`), so it stays in the group; back up, every letter is loaded, once."""
    settings = load_settings(env=pipeline_env(broker, store.database, tmp_path,
                                              STREAMTRACK_DLQ_CONSUMER_GROUP=f"dlq-{uuid.uuid4().hex[:8]}"))
    ensure_topics(settings)
    producer = Producer(client_config(settings))
    marker = uuid.uuid4().hex[:8]
    for i in range(40):
        producer.produce(settings.dlq_topic, key=f"k{i}".encode(), value=f'{{"bad":"{marker}-{i}"}}'.encode(),
                         headers=[("streamtrack-dlq-reason", b"invalid_event"), ("streamtrack-dlq-error", b"test")])
    assert producer.flush(10) == 0

    flaky = FlakyBackend(store.backend)
    flaky.down.set()
    loader = DeadLetterLoader(settings, EventStore(flaky, store.database))
    thread = threading.Thread(target=loader.run, name="dlq-loader-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: flaky.refused >= 2 and loader.paused, 30, "the loader to retry, paused")
        assert loader.loaded == 0
        flaky.down.clear()
        wait_for(lambda: loader.loaded >= 40, 30, "every dead letter loaded once ClickHouse is back")
    finally:
        loader.stop()
        thread.join(30)
    assert not thread.is_alive()
    [(rows, records)] = store.backend.query(
        f"SELECT count(), uniqExact(dlq_partition, dlq_offset) FROM `{store.database}`.dead_letters"
        " WHERE dlq_topic = {topic:String}", {"topic": settings.dlq_topic})
    assert (rows, records, loader.loaded) == (40, 40, 40)
