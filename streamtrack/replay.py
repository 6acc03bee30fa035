"""`streamtrack replay`: archived events back through the normal path (Kafka, then the worker).

Nothing is written to ClickHouse from here: the events are produced to the events topic as
the API produced them (same bytes, keyed by user, so a user's events stay in order in one
partition), and the worker stores those it does not hold. That is what makes a replay exact
and repeatable: the worker drops every event whose (project, event id) is stored already.
Each record carries the `streamtrack-replay` header, so the worker checks the batch against
ClickHouse rather than its id cache, which would still remember rows deleted since.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException, Producer

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable
from streamtrack.events import encode_event
from streamtrack.kafka.admin import client_config
from streamtrack.timestamps import parse_time
from streamtrack.worker.records import REPLAY_HEADER

if TYPE_CHECKING:
    from streamtrack.archive.reader import Selection

FLUSH_TIMEOUT_S = 60.0


@dataclasses.dataclass
class ReplaySummary:
    objects: int = 0
    bytes: int = 0
    """Compressed bytes read from the object store."""
    events: int = 0
    """Events selected (produced, unless a dry run)."""
    by_project: Counter[str] = dataclasses.field(default_factory=Counter)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, int, int], None]
"""Called after each object: (bytes read so far, bytes in total, events so far)."""


def replay(
    settings: Settings, selection: Selection, *, dry_run: bool = False, progress: Progress | None = None
) -> ReplaySummary:
    """Produce the selected archived events to STREAMTRACK_TOPIC (or only count them: `dry_run`).

    The archive is STREAMTRACK_ARCHIVE_BUCKET/PREFIX at STREAMTRACK_ARCHIVE_ENDPOINT (the
    command's --bucket and --prefix override them). Returns once the broker acknowledged all.
    """
    from streamtrack.archive.objects import ObjectStore  # the [archive] extra
    from streamtrack.archive.reader import read_events, select_objects
    from streamtrack.archive.writer import ARCHIVE_REPLAY

    started = time.monotonic()
    objects = ObjectStore(settings)
    selected = select_objects(objects, settings.archive_prefix, selection)
    total = sum(item.size for item in selected)
    summary = ReplaySummary(dry_run=dry_run)
    producer = None if dry_run else Producer(client_config(settings, **{
        "enable.idempotence": True, "acks": "all", "linger.ms": 50, "compression.type": "lz4",
        "client.id": "streamtrack-replay",
    }))
    errors: list[str] = []

    def report(err, _msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            errors.append(err.str())

    headers = [(REPLAY_HEADER, ARCHIVE_REPLAY)]  # the archive writer skips them: they are in it
    for item in selected:
        events = read_events(objects, item, selection)
        if producer is not None:
            for event in events:
                _produce(producer, settings.topic, event.partition_key.encode(), encode_event(event), headers, report)
            if errors:
                raise BrokerUnavailable(f"replay: the broker refused records: {errors[:3]}")
        summary.objects += 1
        summary.bytes += item.size
        summary.events += len(events)
        summary.by_project.update(event.project_id for event in events)
        if progress is not None:
            progress(summary.bytes, total, summary.events)
    if producer is not None:
        left = producer.flush(FLUSH_TIMEOUT_S)
        if left or errors:
            raise BrokerUnavailable(f"replay: {left} records not acknowledged, errors: {errors[:3]}")
    summary.seconds = time.monotonic() - started
    return summary


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
             report: Callable[..., None]) -> None:
    """Produce one record, waiting while librdkafka's queue is full (backpressure, not an error)."""
    deadline = time.monotonic() + FLUSH_TIMEOUT_S
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
            producer.poll(0)
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise BrokerUnavailable("replay: the producer's queue stayed full for a minute") from None
            producer.poll(0.1)
        except KafkaException as exc:
            raise BrokerUnavailable(f"replay: cannot produce: {exc}") from exc


def add_arguments(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    replay_cmd = commands.add_parser(
        "replay", help="re-ingest archived events through Kafka and the worker (exact: what is stored is dropped)"
    )
    replay_cmd.add_argument("--bucket", help="bucket to read (STREAMTRACK_ARCHIVE_BUCKET)")
    replay_cmd.add_argument("--prefix", help="key prefix of the archive in the bucket (STREAMTRACK_ARCHIVE_PREFIX)")
    replay_cmd.add_argument("--project", help="only this project's events")
    replay_cmd.add_argument("--since", help="only events received at or after this time (RFC 3339 or epoch)")
    replay_cmd.add_argument("--until", help="only events received before this time (RFC 3339 or epoch)")
    replay_cmd.add_argument("--dry-run", action="store_true", help="read and count, produce nothing")
    replay_cmd.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The `streamtrack replay` command: a progress bar while it runs, a summary at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from streamtrack.archive.reader import Selection

    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"streamtrack replay: --since/--until: {exc}", file=sys.stderr)
        return 2
    settings = settings.replace(**{k: v for k, v in (("archive_bucket", args.bucket), ("archive_prefix", args.prefix)) if v})
    selection = Selection(project=args.project, since_ms=since, until_ms=until)
    console = Console(stderr=True)
    columns = (TextColumn("[bold]replay"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[events]} events"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=args.no_progress, transient=False) as bar:
        task = bar.add_task("replay", total=None, events=0)

        def advance(done: int, total: int, events: int) -> None:
            bar.update(task, completed=done, total=total, events=events)

        summary = replay(settings, selection, dry_run=args.dry_run, progress=advance)
    verb = "would replay" if summary.dry_run else "replayed"
    print(f"{verb} {summary.events} events from {summary.objects} objects ({summary.bytes} bytes compressed) of "
          f"{settings.archive_endpoint}/{settings.archive_bucket}/{settings.archive_prefix} in {summary.seconds:.1f} s"
          f" ({summary.events_per_s:.0f} events/s)")
    for project, count in sorted(summary.by_project.items()):
        print(f"  project {project}: {count} events")
    if not summary.dry_run and summary.events:
        print(f"produced to {settings.topic}; the workers store those they do not hold yet")
    return 0
