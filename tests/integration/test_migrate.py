"""`streamtrack migrate` creates the schema, and running it again changes nothing."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import structlog

from streamtrack.cli import main
from streamtrack.config import load_settings
from streamtrack.store import open_store


def test_migrate_command_is_idempotent(engine_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = f"test_{secrets.token_hex(6)}"
    monkeypatch.setenv("STREAMTRACK_DATA_DIR", str(engine_path.parent))
    monkeypatch.setenv("STREAMTRACK_CLICKHOUSE_DATABASE", database)
    try:
        assert main(["migrate"]) == 0
        assert main(["migrate"]) == 0
    finally:
        structlog.reset_defaults()
    store = open_store(load_settings(env={}, data_dir=str(engine_path.parent), clickhouse_database=database))
    try:
        tables = store.backend.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String}", {"db": database}
        )
        assert sorted(tables) == [
            ("aliases", "ReplacingMergeTree"),
            ("api_keys", "ReplacingMergeTree"),
            ("dead_letters", "ReplacingMergeTree"),
            ("erasures", "ReplacingMergeTree"),
            ("events", "ReplacingMergeTree"),
            ("identities", "ReplacingMergeTree"),
            ("projects", "ReplacingMergeTree"),
            ("schema_version", "MergeTree"),
        ]
        assert store.stats().rows == 0
    finally:
        store.drop_database()
