"""Apache Kafka from Maven Central: fetched into a cache (`fetch`), run on loopback (`cluster`).

The test bed's broker (a single node, and a 3-node cluster for the fault tests) and
`streamtrack dev --broker kafka`'s. Needs Java 17+ and, for the first fetch, Maven.
"""

from streamtrack.kafka.apache.cluster import KafkaCluster, KafkaClusterError
from streamtrack.kafka.apache.fetch import KAFKA_VERSION, KafkaFetchError, cache_root, ensure_kafka

__all__ = ["KAFKA_VERSION", "KafkaCluster", "KafkaClusterError", "KafkaFetchError", "cache_root", "ensure_kafka"]
