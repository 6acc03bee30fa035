"""librdkafka's log lines through Python logging: a broker that cannot be reached is a warning
(every client rides out a broker's restart), a refusal to fix (TLS, SASL) stays an error."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Producer

from streamtrack.config import load_settings
from streamtrack.kafka import client_config
from streamtrack.kafka.admin import LIBRDKAFKA_LOG
from streamtrack.kafka.ports import free_port


def test_a_refused_broker_connection_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})  # nothing listens
    producer = Producer(client_config(settings))
    with caplog.at_level(logging.DEBUG, logger="librdkafka"):
        producer.produce("nowhere", b"x")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("Connection refused" in r.getMessage() for r in caplog.records):
            producer.poll(0.1)
    producer.purge()
    refused = [r for r in caplog.records if r.name == "librdkafka" and "Connection refused" in r.getMessage()]
    assert refused, "librdkafka logged no refused connection within 10 s"
    assert {r.levelname for r in refused} == {"WARNING"}
    assert all(r.getMessage().startswith("FAIL ") for r in refused)


def test_a_sasl_refusal_stays_an_error() -> None:
    # As confluent-kafka logs a librdkafka line: level, then (facility, client name, text).
    record = LIBRDKAFKA_LOG.makeRecord(
        "librdkafka", logging.ERROR, __file__, 0, "%s [%s] %s",
        ("FAIL", "rdkafka#producer-1", "127.0.0.1:9092/1: SASL authentication error: Authentication failed"), None,
    )
    assert LIBRDKAFKA_LOG.filter(record)
    assert record.levelname == "ERROR"
