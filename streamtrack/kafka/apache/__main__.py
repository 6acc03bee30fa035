"""`python -m streamtrack.kafka.apache`: fetch Apache Kafka into the cache, print its folder (`make kafka`)."""

from streamtrack.kafka.apache.fetch import ensure_kafka

print(ensure_kafka())
