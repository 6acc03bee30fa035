"""Kafka: client settings, topics, the event producer, offsets and lag, the local broker."""

from streamtrack.kafka.admin import check_broker, client_config, ensure_topics
from streamtrack.kafka.offsets import committed_offsets, end_offsets, lag
from streamtrack.kafka.producer import EventProducer

__all__ = [
    "EventProducer",
    "check_broker",
    "client_config",
    "committed_offsets",
    "end_offsets",
    "ensure_topics",
    "lag",
]
