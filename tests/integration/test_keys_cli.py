"""`streamtrack keys …` and `streamtrack erase` against the real embedded ClickHouse, and dev mode's key banner."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from streamtrack.auth.dev_keys import DEV_PROJECT, dev_keys_banner
from streamtrack.auth.keys import KeyKind
from streamtrack.auth.resolver import KeyResolver
from streamtrack.cli import main
from streamtrack.config import load_settings
from streamtrack.events import Event
from streamtrack.store import EventStore, open_store
from streamtrack.store.keys import migrate_keys

KEY = re.compile(r"\b(st[wr]_[A-Za-z0-9_-]{43})\b")


@pytest.fixture
def cli_store(engine_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EventStore]:
    """The database the CLI works on (from the environment, as in production), opened for checks."""
    database = f"test_{secrets.token_hex(6)}"
    monkeypatch.setenv("STREAMTRACK_DATA_DIR", str(engine_path.parent))
    monkeypatch.setenv("STREAMTRACK_CLICKHOUSE_DATABASE", database)
    store = open_store(load_settings())
    try:
        yield store
    finally:
        structlog.reset_defaults()
        store.drop_database()
        store.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_lifecycle(cli_store: EventStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keys", "create-project", "Web shop", "--id", "shop")
    assert code == 0 and "project shop (Web shop)" in out
    write, read = KEY.findall(out)
    assert write.startswith("stw_") and read.startswith("str_")
    resolver = KeyResolver(cli_store, ttl_seconds=0)
    assert (resolver.resolve(write).project_id, resolver.resolve(write).kind) == ("shop", KeyKind.WRITE)
    assert resolver.resolve(read).kind is KeyKind.READ
    assert run(capsys, "keys", "create-project", "again", "--id", "shop")[0] == 2  # exists already

    code, out, _ = run(capsys, "keys", "list", "--project", "shop")
    assert code == 0 and write[:12] in out and read[:12] in out
    assert write not in out and read not in out  # never the secret

    code, out, _ = run(capsys, "keys", "rotate", read[:12])
    [new_read] = KEY.findall(out)
    assert code == 0 and f"revoked {read[:12]}" in out
    assert resolver.resolve(read) is None and resolver.resolve(new_read).project_id == "shop"

    code, out, _ = run(capsys, "keys", "rotate", write[:12], "--keep-old")
    [new_write] = KEY.findall(out)
    assert resolver.resolve(write) is not None and resolver.resolve(new_write) is not None  # overlap
    assert run(capsys, "keys", "revoke", write[:12])[0] == 0
    assert resolver.resolve(write) is None and resolver.resolve(new_write) is not None

    assert run(capsys, "keys", "revoke", "stw_")[2].startswith("streamtrack keys: give at least 8")
    assert "no active key" in run(capsys, "keys", "revoke", write[:12])[2]  # revoked already
    code, _, err = run(capsys, "keys", "create", "--project", "nope", "--kind", "read")
    assert code == 2 and "no project nope" in err
    code, out, _ = run(capsys, "keys", "create", "--project", "shop", "--kind", "read", "--name", "reporting")
    assert code == 0 and resolver.resolve(KEY.findall(out)[0]).project_id == "shop"


def test_erase_command(cli_store: EventStore, capsys: pytest.CaptureFixture[str]) -> None:
    cli_store.migrate()
    events = [
        Event(event_id=f"{project}-{user}-{i}", event_type="click", timestamp=1_769_860_800_000 + i,
              received_at=1_769_860_800_000, user_id=user, project_id=project)
        for project in ("shop", "blog") for user in ("u-1", "u-2") for i in range(3)
    ]
    cli_store.insert(events)
    cli_store.insert([events[0], events[3]])  # a copy that slipped past the worker, of shop's u-1 and u-2
    code, out, _ = run(capsys, "erase", "--project", "shop", "--user", "u-1")
    assert code == 0 and out.strip() == "erased 4 events of user 'u-1' in project shop"  # the copy included
    db = f"`{cli_store.database}`"
    left = cli_store.backend.query(f"SELECT project_id, user_id, count() FROM {db}.events GROUP BY 1, 2 ORDER BY 1, 2")
    assert left == [("blog", "u-1", 3), ("blog", "u-2", 3), ("shop", "u-2", 4)]


def test_dev_banner(cli_store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMTRACK_LOADGEN_KEY", "")  # restored after the test
    cli_store.migrate()
    migrate_keys(cli_store)
    settings = load_settings()
    off = dev_keys_banner(settings.replace(auth=False), cli_store)
    assert "AUTH IS OFF" in off and "project 'default'" in off and not KEY.search(off)
    on = dev_keys_banner(settings.replace(auth=True), cli_store)
    write, read = KEY.findall(on)[:2]
    resolver = KeyResolver(cli_store, ttl_seconds=0)
    assert resolver.resolve(write).project_id == DEV_PROJECT and resolver.resolve(read).kind is KeyKind.READ
    assert os.environ["STREAMTRACK_LOADGEN_KEY"] == write  # the dashboard's load generator sends with it
    again = dev_keys_banner(settings.replace(auth=True), cli_store)  # a restart: a new pair, the project kept
    assert KEY.findall(again)[0] != write and resolver.resolve(write) is not None
