"""The operator's lag read on a Kafka whose group coordinator is still loading.

On a fresh cluster (and whenever a coordinator moves) Apache Kafka answers offset fetches with
NOT_COORDINATOR for a moment; librdkafka's admin ListConsumerGroupOffsets then dereferences a
null group handle and the process dies with SIGSEGV (librdkafka#5040). The lag reader reads
committed offsets through a consumer of the group instead; this runs the reads in a child
process, so a crash fails the test instead of killing the test run.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka.admin import NewTopic

from streamtrack.kafka.apache import KafkaCluster

READS = """
import sys
from streamtrack.kafka.lag_reader import lag_admin_client, read_lag
admin = lag_admin_client({"bootstrap.servers": sys.argv[1]})
for i in range(5):
    print(read_lag(admin, f"unseen-{i}", sys.argv[2], timeout=10).total)
"""


def test_lag_reads_survive_a_coordinator_that_is_still_loading(tmp_path: Path) -> None:
    with KafkaCluster(tmp_path / "kafka", nodes=1) as kafka:  # fresh: __consumer_offsets not made yet
        topic = f"fresh-{uuid.uuid4().hex[:6]}"
        for future in kafka.admin().create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)]).values():
            future.result(30)
        done = subprocess.run([sys.executable, "-c", READS, kafka.bootstrap_servers, topic],
                              capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0"] * 5
