"""The worker: Kafka -> ClickHouse in batches, offsets committed only after the insert."""

from streamtrack.worker.runner import Worker, WorkerStats, tune_gc

__all__ = ["Worker", "WorkerStats", "tune_gc"]
