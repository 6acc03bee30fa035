"""Where the archive puts things, and in what format.

Objects: `PREFIX/project=P/date=YYYY-MM-DD/hour=HH/TOPIC-PARTITION-FIRST-LAST.ndjson.gz`, one
per (project, hour) of a batch's records of one partition, FIRST..LAST being the batch's
offsets of that partition. The hour is the hour the API received the event (`received_at`):
a batch's events fall in one or two hours, where event times (client clocks, offline
flushes) would scatter them. The name is a function of the offsets, so writing a batch
again rewrites the same objects. Hive-style `key=value` folders are what ClickHouse's `s3`
function, Spark, DuckDB and Athena read as partition columns.

Format: gzip NDJSON, one canonical event (`streamtrack.events.Event`'s JSON) per line, in
offset order; gzip's header carries no time (mtime 0), so the same events give the same bytes.

Manifests: `PREFIX/_manifests/TOPIC/PARTITION/FIRST-LAST.json`, written before a batch's
objects, list them: after a crash, a writer that starts again at FIRST finds what the lost
attempt may have written and deletes it, so no object of the archive overlaps another.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from streamtrack.events import Event, decode_event, encode_event

SUFFIX = ".ndjson.gz"
_OBJECT = re.compile(
    r"project=(?P<project>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<topic>.+)-(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)" + re.escape(SUFFIX) + "$"
)


@dataclasses.dataclass(frozen=True)
class ObjectKey:
    project: str
    date: str
    hour: int
    topic: str
    partition: int
    first: int
    last: int

    @property
    def hour_start_ms(self) -> int:
        day = datetime.fromisoformat(self.date).replace(tzinfo=UTC)
        return int(day.timestamp() * 1000) + self.hour * 3_600_000


def hour_of(received_ms: int) -> tuple[str, int]:
    """(YYYY-MM-DD, hour) of a time, UTC."""
    moment = datetime.fromtimestamp(received_ms / 1000, UTC)
    return moment.date().isoformat(), moment.hour


def object_name(prefix: str, project: str, date: str, hour: int, topic: str, partition: int, first: int, last: int) -> str:
    return f"{prefix}/project={project}/date={date}/hour={hour:02d}/{topic}-{partition}-{first}-{last}{SUFFIX}"


def parse_object_name(prefix: str, name: str) -> ObjectKey | None:
    """The parts of an archive object's name; None for anything else under the prefix (manifests)."""
    if not name.startswith(prefix + "/"):
        return None
    match = _OBJECT.fullmatch(name[len(prefix) + 1:])
    if match is None:
        return None
    g = match.groupdict()
    return ObjectKey(g["project"], g["date"], int(g["hour"]), g["topic"], int(g["partition"]), int(g["first"]), int(g["last"]))


def manifest_prefix(prefix: str, topic: str, partition: int, first: int | None = None) -> str:
    """Manifests of a partition, or those of the batches that began at `first`."""
    base = f"{prefix}/_manifests/{topic}/{partition}/"
    return base if first is None else f"{base}{first}-"


def manifest_name(prefix: str, topic: str, partition: int, first: int, last: int) -> str:
    return f"{manifest_prefix(prefix, topic, partition, first)}{last}.json"


def encode_objects(events: Iterable[Event]) -> bytes:
    """gzip NDJSON of the events (deterministic bytes)."""
    body = b"".join(encode_event(event) + b"\n" for event in events)
    return gzip.compress(body, compresslevel=6, mtime=0)


def decode_objects(data: bytes) -> list[Event]:
    return [decode_event(line) for line in gzip.decompress(data).splitlines() if line]
