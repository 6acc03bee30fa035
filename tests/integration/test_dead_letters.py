"""Records the worker cannot store go to the dead-letter topic with the reason; the rest flow on."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer

from streamtrack.events import Event, encode_event
from streamtrack.kafka import client_config
from tests.fixtures.pipeline import Pipeline


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
