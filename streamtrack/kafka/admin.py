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


_UNREACHABLE = ("Connection refused", "Disconnected", "Connect to", "timed out", "Connection reset")


class _BrokerUnreachableIsAWarning(logging.Filter):
    """librdkafka logs every refused or dropped broker connection (facility FAIL) at ERROR. A
    broker's restart (a rolling upgrade, a failover) is routine and every client rides it out
    (503 + Retry-After, paused consumption, Ready=False on the operator), so those lines are
    warnings. Other FAIL lines (TLS or SASL refusals: a configuration to fix) stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (record.levelno == logging.ERROR and isinstance(args, tuple) and len(args) == 3 and args[0] == "FAIL"
                and any(text in str(args[2]) for text in _UNREACHABLE)):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
LIBRDKAFKA_LOG.addFilter(_BrokerUnreachableIsAWarning())


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
