"""The dead-letter topic: records the worker cannot store, with the reason in headers.

The original bytes, key and headers are kept so a record can be inspected and replayed;
`streamtrack-dlq-*` headers say why and where it came from. Dead letters are flushed and
acknowledged before the batch's offsets are committed, so none is lost in a crash.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException, Producer

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable
from streamtrack.kafka.admin import client_config
from streamtrack.worker.records import Rejected

MAX_DETAIL_BYTES = 1024


class DeadLetters:
    def __init__(self, settings: Settings) -> None:
        self.topic = settings.dlq_topic
        self._producer = Producer(
            client_config(settings, **{"enable.idempotence": True, "acks": "all", "client.id": "streamtrack-worker-dlq"})
        )

    def send(self, rejected: list[Rejected], timeout: float = 30.0) -> None:
        """Produce and wait for every acknowledgement; raise BrokerUnavailable otherwise."""
        errors: list[str] = []

        def report(err, _msg) -> None:  # type: ignore[no-untyped-def]
            if err is not None:
                errors.append(err.str())

        for item in rejected:
            source = item.message
            headers = list(source.headers() or []) + [
                ("streamtrack-dlq-reason", item.reason.encode()),
                ("streamtrack-dlq-error", item.detail.encode()[:MAX_DETAIL_BYTES]),
                ("streamtrack-dlq-topic", (source.topic() or "").encode()),
                ("streamtrack-dlq-partition", str(source.partition()).encode()),
                ("streamtrack-dlq-offset", str(source.offset()).encode()),
                ("streamtrack-dlq-at", str(time.time_ns() // 1_000_000).encode()),
            ]
            try:
                self._producer.produce(
                    self.topic, value=source.value(), key=source.key(), headers=headers, on_delivery=report
                )
            except (BufferError, KafkaException) as exc:
                raise BrokerUnavailable(f"cannot queue a dead letter: {exc}") from exc
        left = self._producer.flush(timeout)
        if left or errors:
            raise BrokerUnavailable(f"dead letters not acknowledged: {left} pending, errors: {errors[:3]}")

    def close(self) -> None:
        self._producer.flush(5)
