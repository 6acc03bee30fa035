"""Projects and API keys in ClickHouse: the DDL and every statement on them.

Why ClickHouse rather than another store: every API replica and the CLI reach it already (no
new stateful service to run, secure and back up); keys are written rarely (the CLI) and read
rarely (each replica caches a lookup for STREAMTRACK_KEY_CACHE_SECONDS), so ClickHouse's
weak spots — no transactions, eventual merges — do not matter:
- a change is a new row of the same key with a higher `version` (ReplacingMergeTree(version));
  reads use FINAL, so the latest row wins before merges;
- revoking is such a row with `revoked = 1`; a lookup of a revoked key finds nothing.
In a cluster the tables are replicated to every node (one shard), so any node answers a lookup.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streamtrack.auth.keys import KeyKind, NewKey, Principal
from streamtrack.store.schema import on_cluster, quote_identifier
from streamtrack.store.store import EventStore
from streamtrack.timestamps import now_ms

PROJECTS_TABLE = "projects"
KEYS_TABLE = "api_keys"

_TABLES = {
    PROJECTS_TABLE: (
        "`project_id` String, `name` String, `created_at` DateTime64(3, 'UTC'), `version` UInt64",
        "project_id",
    ),
    KEYS_TABLE: (
        "`key_hash` String, `prefix` String, `project_id` String, `kind` LowCardinality(String), `name` String, "
        "`created_at` DateTime64(3, 'UTC'), `revoked` UInt8, `version` UInt64",
        "key_hash",
    ),
}


def key_statements(database: str, cluster: str = "") -> list[str]:
    """Idempotent DDL of the two tables (after `schema_statements`, which creates the database)."""
    db = quote_identifier(database)
    here = on_cluster(cluster)
    statements = []
    for table, (columns, order_by) in _TABLES.items():
        engine = "ReplacingMergeTree(version)"
        if cluster:  # one copy on every node: the path has no {shard}
            engine = f"ReplicatedReplacingMergeTree('/clickhouse/tables/all/{{database}}/{table}', '{{replica}}', version)"
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {db}.`{table}`{here} ({columns}) ENGINE = {engine} ORDER BY {order_by}"
        )
    return statements


def migrate_keys(store: EventStore) -> None:
    for statement in key_statements(store.database, store.cluster):
        store.backend.command(statement)


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret."""

    prefix: str
    project_id: str
    kind: str
    name: str
    created_at: str
    revoked: bool


def create_project(store: EventStore, project_id: str, name: str) -> None:
    now = now_ms()
    store.backend.command(
        f"INSERT INTO {quote_identifier(store.database)}.`{PROJECTS_TABLE}` (project_id, name, created_at, version) "
        "SELECT {project_id:String}, {name:String}, fromUnixTimestamp64Milli({now:Int64}, 'UTC'), {now:Int64}",
        {"project_id": project_id, "name": name, "now": now},
    )


def project_exists(store: EventStore, project_id: str) -> bool:
    rows = store.backend.query(
        f"SELECT count() FROM {quote_identifier(store.database)}.`{PROJECTS_TABLE}` FINAL "
        "WHERE project_id = {project_id:String}",
        {"project_id": project_id},
    )
    return bool(rows and int(rows[0][0]))


def projects(store: EventStore) -> list[tuple[str, str]]:
    """(project_id, name) of every project."""
    rows = store.backend.query(
        f"SELECT project_id, name FROM {quote_identifier(store.database)}.`{PROJECTS_TABLE}` FINAL ORDER BY project_id"
    )
    return [(str(p), str(n)) for p, n in rows]


def add_key(store: EventStore, project_id: str, key: NewKey, name: str = "") -> None:
    _write_key_row(store, key.hash, key.prefix, project_id, key.kind, name, revoked=False)


def _write_key_row(
    store: EventStore, key_hash: str, prefix: str, project_id: str, kind: str, name: str, *, revoked: bool,
    created_ms: int | None = None,
) -> None:
    now = now_ms()
    store.backend.command(
        f"INSERT INTO {quote_identifier(store.database)}.`{KEYS_TABLE}` "
        "(key_hash, prefix, project_id, kind, name, created_at, revoked, version) "
        "SELECT {key_hash:String}, {prefix:String}, {project_id:String}, {kind:String}, {name:String}, "
        "fromUnixTimestamp64Milli({created:Int64}, 'UTC'), {revoked:UInt8}, {version:UInt64}",
        {"key_hash": key_hash, "prefix": prefix, "project_id": project_id, "kind": str(kind), "name": name,
         "created": created_ms if created_ms is not None else now, "revoked": int(revoked), "version": now},
    )


def find_key(store: EventStore, key_hash: str) -> Principal | None:
    """The live key with this hash, or None (unknown or revoked)."""
    rows = store.backend.query(
        f"SELECT project_id, kind, prefix FROM {quote_identifier(store.database)}.`{KEYS_TABLE}` FINAL "
        "WHERE key_hash = {key_hash:String} AND revoked = 0",
        {"key_hash": key_hash},
    )
    if not rows:
        return None
    project_id, kind, prefix = rows[0]
    return Principal(project_id=str(project_id), kind=KeyKind(kind), prefix=str(prefix))


def list_keys(store: EventStore, project_id: str | None = None) -> list[KeyInfo]:
    where, params = "", {}
    if project_id is not None:
        where, params = "WHERE project_id = {project_id:String}", {"project_id": project_id}
    rows = store.backend.query(
        "SELECT prefix, project_id, kind, name, formatDateTime(created_at, '%Y-%m-%dT%H:%i:%SZ'), revoked "
        f"FROM {quote_identifier(store.database)}.`{KEYS_TABLE}` FINAL {where} ORDER BY project_id, created_at, prefix",
        params,
    )
    return [KeyInfo(str(p), str(pr), str(k), str(n), str(c), bool(int(r))) for p, pr, k, n, c, r in rows]


def revoke_keys(store: EventStore, prefix: str) -> list[KeyInfo]:
    """Revoke every live key whose shown prefix starts with `prefix`; returns them.

    A prefix matches by its start so `streamtrack keys revoke str_AbCd` works with what `list`
    printed; callers refuse a prefix that matches keys of several projects.
    """
    db = quote_identifier(store.database)
    rows: list[tuple[Any, ...]] = store.backend.query(
        "SELECT key_hash, prefix, project_id, kind, name, toUnixTimestamp64Milli(created_at) "
        f"FROM {db}.`{KEYS_TABLE}` FINAL WHERE startsWith(prefix, {{prefix:String}}) AND revoked = 0",
        {"prefix": prefix},
    )
    revoked = []
    for key_hash, shown, project_id, kind, name, created in rows:
        _write_key_row(store, str(key_hash), str(shown), str(project_id), str(kind), str(name), revoked=True,
                       created_ms=int(created))
        revoked.append(KeyInfo(str(shown), str(project_id), str(kind), str(name), "", True))
    return revoked
