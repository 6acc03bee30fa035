"""Client configuration and topic administration shared by the API, the worker and the operator."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable

log = structlog.get_logger(__name__)
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka properties for any client: servers, SASL/TLS options, then `extra`.

    librdkafka's own log lines go through Python logging instead of raw stderr.
    """
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "logger": LIBRDKAFKA_LOG,
        **settings.kafka_options,
        **extra,
    }


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create the events and dead-letter topics if missing; return the ones created.

    An existing topic is left as it is (its partition count is the operator's business).
    """
    admin = admin_client(settings)
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
    wanted = {settings.topic: settings.topic_partitions, settings.dlq_topic: settings.topic_partitions}
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=settings.topic_replication)
        for name, partitions in wanted.items()
        if name not in existing
    ]
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items() if missing else ():
        try:
            future.result(timeout=timeout)
            created.append(name)
            log.info("topic created", topic=name, partitions=wanted[name])
        except KafkaException as exc:
            if exc.args and exc.args[0].name() == "TOPIC_ALREADY_EXISTS":  # another replica won the race
                continue
            raise BrokerUnavailable(f"cannot create topic {name!r}: {exc}") from exc
    return created


def check_broker(settings: Settings, timeout: float = 2.0) -> None:
    """Raise BrokerUnavailable unless the broker answers and the events topic exists."""
    try:
        topics = admin_client(settings).list_topics(topic=settings.topic, timeout=timeout).topics
    except KafkaException as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap_servers} does not answer: {exc}") from exc
    meta = topics.get(settings.topic)
    if meta is None or meta.error is not None:
        raise BrokerUnavailable(f"topic {settings.topic!r} is not available: {meta.error if meta else 'missing'}")
