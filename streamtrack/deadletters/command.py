"""`streamtrack dlq list|show|replay|load`: dead letters from a terminal.

list, show and replay first load what the dead-letter topic holds beyond the loader
group (`catch_up`), so they answer for every record refused so far, with or without a
running loader. `load` runs the loader itself, in the foreground.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, datetime

from streamtrack.config import Settings
from streamtrack.deadletters.loader import DeadLetterLoader, catch_up
from streamtrack.deadletters.replay import replay_letters
from streamtrack.store import EventStore, open_store
from streamtrack.store import deadletters as table
from streamtrack.timestamps import parse_time

SHOWN_VALUE_BYTES = 2000


def add_arguments(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dlq = commands.add_parser("dlq", help="dead letters: list, show, replay (after a fix of the rules), load")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = actions.add_parser("list", help="dead letters, newest first")
    replay = actions.add_parser("replay", help="check dead letters again under today's settings; produce those that pass")
    for sub in (listing, replay):
        sub.add_argument("--project", help="only this project's ('' for those with no project)")
        sub.add_argument("--reason", help="only this reason (undecodable, invalid_event, record_too_large)")
        sub.add_argument("--since", help="refused at or after (RFC 3339 or epoch)")
        sub.add_argument("--until", help="refused before (RFC 3339 or epoch)")
    listing.add_argument("--status", choices=["dead", "replayed", "all"], default="dead", help="default: dead")
    listing.add_argument("--limit", type=int, default=50, help="most rows (default 50, at most 1000)")
    replay.add_argument("ids", nargs="*", metavar="ID", help="partition:offset of each (default: every dead one that matches)")
    show = actions.add_parser("show", help="one dead letter, with its original bytes and headers")
    show.add_argument("id", metavar="ID", help="partition:offset in the dead-letter topic (from dlq list)")
    actions.add_parser("load", help="run the loader (dead-letter topic -> ClickHouse) in the foreground")


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    try:
        store.migrate()
        if args.dlq_command == "load":
            return _load(settings, store)
        catch_up(settings, store)
        if args.dlq_command == "show":
            return _show(store, args.id)
        flt = _filter(args)
        if args.dlq_command == "list":
            return _list(store, flt, args.limit)
        return _replay(settings, store, flt, args.ids)
    except ValueError as exc:
        print(f"streamtrack dlq: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _filter(args: argparse.Namespace) -> table.Filter:
    status = getattr(args, "status", table.DEAD)
    return table.Filter(
        project_id=args.project, reason=args.reason, status=None if status == "all" else status,
        since_ms=parse_time(args.since) if args.since else None, until_ms=parse_time(args.until) if args.until else None,
    )


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _list(store: EventStore, flt: table.Filter, limit: int) -> int:
    letters = table.select(store, flt, limit=max(1, limit))
    print(f"{'ID':<12} {'DEAD AT':<25} {'PROJECT':<16} {'REASON':<17} {'STATUS':<9} ERROR")
    for letter in letters:
        print(f"{letter.id:<12} {_when(letter.dead_at):<25} {letter.project_id or '-':<16} {letter.reason:<17} "
              f"{letter.status:<9} {letter.error[:80]}")
    print(f"{len(letters)} dead letters" + (" (more: narrow with --since/--until or raise --limit)" if len(letters) >= limit else ""))
    return 0


def _show(store: EventStore, text: str) -> int:
    partition, offset = table.parse_id(text)
    letter = table.get(store, partition, offset)
    if letter is None:
        print(f"streamtrack dlq: no dead letter {text}", file=sys.stderr)
        return 1
    print(f"id:        {letter.id} ({letter.dlq_topic})")
    print(f"status:    {letter.status} (replays: {letter.replays})")
    print(f"reason:    {letter.reason}\nerror:     {letter.error}")
    print(f"project:   {letter.project_id or '(unknown)'}\nevent id:  {letter.event_id or '(unknown)'}")
    print(f"dead at:   {_when(letter.dead_at)}\nfrom:      {letter.topic} partition {letter.partition} offset {letter.offset}")
    print(f"key:       {letter.key!r}")
    for name, value in letter.headers:
        print(f"header:    {name} = {value!r}")
    value = letter.value
    shown = "(no value)" if value is None else repr(value[:SHOWN_VALUE_BYTES]) + (" ..." if len(value) > SHOWN_VALUE_BYTES else "")
    print(f"value:     {len(value or b'')} bytes: {shown}")
    return 0


def _replay(settings: Settings, store: EventStore, flt: table.Filter, ids: list[str]) -> int:
    if ids:
        letters = [letter for text in ids if (letter := table.get(store, *table.parse_id(text))) is not None]
    else:
        letters, after = [], None
        while page := table.select(store, flt, limit=table.MAX_PAGE, after=after):
            letters.extend(page)
            after = (page[-1].dead_at, page[-1].dlq_partition, page[-1].dlq_offset)
    outcome = replay_letters(settings, store, letters)
    for letter in outcome.still_dead:
        print(f"still dead {letter.id}: {letter.reason}: {letter.error[:120]}")
    print(f"replayed {len(outcome.replayed)} to {settings.topic}; {len(outcome.still_dead)} still dead"
          f"; {len(letters) - len(outcome.replayed) - len(outcome.still_dead)} were replayed before")
    return 0


def _load(settings: Settings, store: EventStore) -> int:
    loader = DeadLetterLoader(settings, store)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loader.stop())
    loader.run()
    return 0
