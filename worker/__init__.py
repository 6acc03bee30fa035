"""The worker: Kafka -> ClickHouse in batches, offsets committed only after the insert."""

from streamtrack.worker.runner import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
