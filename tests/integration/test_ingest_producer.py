"""Per-event results of EventProducer.send_many (one delivery callback for a whole send), on Apache Kafka.

A send's results must say, index by index, which events the broker has: the refusals of a
full local queue, the failures of a broker that never answers, and byte-equal records in
one send (which the callback cannot tell apart, and need not).
"""

from __future__ import annotations

import asyncio
import uuid

from streamtrack.config import load_settings
from streamtrack.events import Event
from streamtrack.kafka import EventProducer, ensure_topics
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.ports import free_port


def events(count: int, *, same_id: bool = False) -> list[Event]:
    return [
        Event(event_id="same" if same_id else f"e{i}", event_type="click", timestamp=1_764_000_000_000,
              received_at=1_764_000_000_000, user_id=f"u{i % 3}" if not same_id else "u")
        for i in range(count)
    ]


def producer_for(bootstrap: str, **env: str) -> EventProducer:
    settings = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "STREAMTRACK_TOPIC": f"send-{uuid.uuid4().hex[:8]}",
                                  **env})
    if "STREAMTRACK_PRODUCE_TIMEOUT_MS" not in env:
        ensure_topics(settings)
    return EventProducer(settings)


def test_every_event_acknowledged_is_none_and_offsets_are_noted(broker: KafkaCluster) -> None:
    producer = producer_for(broker.bootstrap_servers)
    try:
        results = asyncio.run(producer.send_many(events(50)))
        assert results == [None] * 50
        assert sum(offset + 1 for offset in producer.delivered.values()) == 50  # fresh topic: offsets 0..n-1
        assert asyncio.run(producer.send_many([])) == []
    finally:
        producer.close()


def test_a_full_queue_refuses_the_events_past_it_at_their_index(broker: KafkaCluster) -> None:
    producer = producer_for(broker.bootstrap_servers, STREAMTRACK_PRODUCER_QUEUE_MAX="5",
                            STREAMTRACK_PRODUCER_LINGER_MS="200")
    try:
        results = asyncio.run(producer.send_many(events(12)))
        assert results[:5] == [None] * 5
        assert [r.message if r else None for r in results[5:]] == ["too many events are waiting for the broker"] * 7
        assert all(r.code == "broker_unavailable" and r.retry_after >= 1 for r in results[5:] if r)
    finally:
        producer.close()


def test_a_broker_that_never_answers_fails_every_event() -> None:
    producer = producer_for(f"127.0.0.1:{free_port()}", STREAMTRACK_PRODUCE_TIMEOUT_MS="300")  # nothing listens there
    try:
        results = asyncio.run(producer.send_many(events(4)))
        assert all(r is not None and r.message.startswith("the broker did not take the event") for r in results), results
    finally:
        producer.close(timeout=1)


def test_byte_equal_records_in_one_send_are_each_acknowledged(broker: KafkaCluster) -> None:
    producer = producer_for(broker.bootstrap_servers)
    try:
        assert asyncio.run(producer.send_many(events(3, same_id=True))) == [None, None, None]
    finally:
        producer.close()
