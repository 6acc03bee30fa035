"""The raw archive: every accepted event in S3-compatible object storage (`writer`), in
objects named by topic, partition and offsets (`layout`), read back by `reader` for replay."""

from streamtrack.archive.objects import ArchiveUnavailable, ObjectStore
from streamtrack.archive.writer import ArchiveStats, ArchiveWriter

__all__ = ["ArchiveStats", "ArchiveUnavailable", "ArchiveWriter", "ObjectStore"]
