"""`streamtrack keys …` (projects and keys) and `streamtrack erase` (one user's events, GDPR).

They talk to ClickHouse directly, like `migrate`. In embedded mode the engine allows one
process per data folder, so run them while `streamtrack dev` is stopped (or let
`streamtrack dev --auth on` create a dev project and print its keys).
"""

from __future__ import annotations

import argparse
import sys

from streamtrack.auth.keys import SHOWN_PREFIX_CHARS, KeyKind, NewKey, new_key, new_project_id
from streamtrack.config import Settings
from streamtrack.store import EventStore, open_store
from streamtrack.store.keys import (
    KeyInfo,
    add_key,
    create_project,
    list_keys,
    migrate_keys,
    project_exists,
    revoke_keys,
)
from streamtrack.store.privacy import erase_user

MIN_PREFIX_CHARS = 8


def add_arguments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="projects and API keys: create-project, create, list, revoke, rotate")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    project = sub.add_parser("create-project", help="a new project with one write key and one read key (printed once)")
    project.add_argument("name", help="a name for people (the id is generated unless --id)")
    project.add_argument("--id", dest="project_id", help="the project id to use (letters, digits, '.', '_', '-')")
    create = sub.add_parser("create", help="a new key of a project (printed once)")
    create.add_argument("--project", required=True)
    create.add_argument("--kind", required=True, choices=[k.value for k in KeyKind])
    create.add_argument("--name", default="", help="what the key is for, e.g. 'web site'")
    listing = sub.add_parser("list", help="keys by prefix (never the secret)")
    listing.add_argument("--project")
    revoke = sub.add_parser("revoke", help="revoke the key whose prefix is given (as `list` shows it)")
    revoke.add_argument("prefix")
    rotate = sub.add_parser("rotate", help="a new key of the same project and kind; the old one is revoked")
    rotate.add_argument("prefix")
    rotate.add_argument(
        "--keep-old", action="store_true", help="leave the old key working (revoke it once clients use the new one)"
    )
    erase = commands.add_parser("erase", help="delete one user's events from a project (GDPR); prints the rows removed")
    erase.add_argument("--project", required=True)
    erase.add_argument("--user", required=True, help="the user_id (or anonymous_id) whose events to delete")


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    try:
        store.migrate()
        migrate_keys(store)
        if args.command == "erase":
            return _erase(store, args)
        return ACTIONS[args.keys_command](store, args)
    finally:
        store.close()


def _fail(message: str) -> int:
    print(f"streamtrack keys: {message}", file=sys.stderr)
    return 2


def _print_key(key: NewKey, project_id: str) -> None:
    label = {
        KeyKind.WRITE: "write key (public: ingestion only)",
        KeyKind.READ: "read key (SECRET: queries)",
        KeyKind.ADMIN: "admin key (SECRET: queries, instance-wide status)",
    }[key.kind]
    print(f"{label:36} {key.secret}")


def _create_project(store: EventStore, args: argparse.Namespace) -> int:
    from streamtrack.config import _name

    try:
        project_id = _name(args.project_id) if args.project_id else new_project_id()
    except ValueError as exc:
        return _fail(f"--id: {exc}")
    if project_exists(store, project_id):
        return _fail(f"project {project_id} exists already")
    create_project(store, project_id, args.name)
    print(f"project {project_id} ({args.name})")
    print("Keys are shown once; StreamTrack keeps only their hashes.")
    for kind in (KeyKind.WRITE, KeyKind.READ):
        key = new_key(kind)
        add_key(store, project_id, key, name=f"{kind.value} key")
        _print_key(key, project_id)
    return 0


def _create(store: EventStore, args: argparse.Namespace) -> int:
    if not project_exists(store, args.project):
        return _fail(f"no project {args.project} (create it with `streamtrack keys create-project`)")
    key = new_key(KeyKind(args.kind))
    add_key(store, args.project, key, name=args.name)
    _print_key(key, args.project)
    return 0


def _list(store: EventStore, args: argparse.Namespace) -> int:
    rows = list_keys(store, args.project)
    print(f"{'PREFIX':14} {'PROJECT':20} {'KIND':6} {'CREATED':21} {'STATUS':8} NAME")
    for key in rows:
        status = "revoked" if key.revoked else "active"
        print(f"{key.prefix:14} {key.project_id:20} {key.kind:6} {key.created_at:21} {status:8} {key.name}")
    return 0


def _one_live_key(store: EventStore, prefix: str) -> KeyInfo | str:
    """The only live key with this prefix, or why there is not exactly one."""
    if len(prefix) < MIN_PREFIX_CHARS:
        return f"give at least {MIN_PREFIX_CHARS} characters of the key (as `streamtrack keys list` shows)"
    shown = prefix[:SHOWN_PREFIX_CHARS]  # a whole key given: its shown part
    matches = [k for k in list_keys(store) if k.prefix.startswith(shown) and not k.revoked]
    if not matches:
        return f"no active key starts with {prefix}"
    if len(matches) > 1:
        return f"{len(matches)} active keys start with {prefix}; give more of it"
    return matches[0]


def _revoke(store: EventStore, args: argparse.Namespace) -> int:
    found = _one_live_key(store, args.prefix)
    if isinstance(found, str):
        return _fail(found)
    revoke_keys(store, found.prefix)
    print(f"revoked {found.prefix} ({found.kind} key of {found.project_id}); API replicas drop it within "
          f"STREAMTRACK_KEY_CACHE_SECONDS")
    return 0


def _rotate(store: EventStore, args: argparse.Namespace) -> int:
    found = _one_live_key(store, args.prefix)
    if isinstance(found, str):
        return _fail(found)
    key = new_key(KeyKind(found.kind))
    add_key(store, found.project_id, key, name=found.name)
    _print_key(key, found.project_id)
    if args.keep_old:
        print(f"{found.prefix} still works: revoke it with `streamtrack keys revoke {found.prefix}` once clients use the new key")
    else:
        revoke_keys(store, found.prefix)
        print(f"revoked {found.prefix}")
    return 0


def _erase(store: EventStore, args: argparse.Namespace) -> int:
    removed = erase_user(store, args.project, args.user)
    print(f"erased {removed} events of user {args.user!r} in project {args.project}")
    return 0


ACTIONS = {"create-project": _create_project, "create": _create, "list": _list, "revoke": _revoke, "rotate": _rotate}
