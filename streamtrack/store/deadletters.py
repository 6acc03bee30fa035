"""The `dead_letters` table: the dead-letter topic kept where it can be queried.

One row per record of the dead-letter topic, identified by its place there (dlq topic,
partition, offset). It keeps what the worker knew (reason, error, the original topic,
partition and offset, when) and the original record itself (value, key and headers, as
bytes), so a record can be read and replayed. A ReplacingMergeTree on `updated_at`: a replay
writes a new version of the row (`replayed`, or still `dead` with the new reason), and reads
use FINAL (the table is small). Sorted project first, as the events: a read key's listing
reads its project's rows only. `project_id` is '' when the record names none that can be
trusted (not an event); only an admin sees those.

Bytes are read back as hex (`unhex` on the way in is not needed: Arrow binary columns are
inserted as they are), so a record with any bytes survives the JSON result format exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from streamtrack.store import queries
from streamtrack.store.schema import data_table, on_cluster, quote_identifier

TABLE = "dead_letters"
DEAD = "dead"
REPLAYED = "replayed"
MAX_PAGE = 1000

COLUMNS: tuple[tuple[str, str], ...] = (
    ("dlq_topic", "LowCardinality(String)"),
    ("dlq_partition", "Int32"),
    ("dlq_offset", "Int64"),
    ("topic", "LowCardinality(String)"),
    ("partition", "Int32"),
    ("offset", "Int64"),
    ("reason", "LowCardinality(String)"),
    ("error", "String"),
    ("value", "Nullable(String)"),  # the original bytes; NULL: the record had no value
    ("key", "Nullable(String)"),
    ("header_keys", "Array(String)"),
    ("header_values", "Array(String)"),
    ("project_id", "String"),
    ("event_id", "String"),
    ("dead_at", "DateTime64(3, 'UTC')"),
    ("status", "LowCardinality(String)"),
    ("replays", "UInt32"),
    ("updated_at", "DateTime64(3, 'UTC')"),
)
ORDER_BY = "(project_id, dlq_topic, dlq_partition, dlq_offset)"

_ARROW = pa.schema([
    ("dlq_topic", pa.string()), ("dlq_partition", pa.int32()), ("dlq_offset", pa.int64()),
    ("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
    ("reason", pa.string()), ("error", pa.string()), ("value", pa.binary()), ("key", pa.binary()),
    ("header_keys", pa.list_(pa.string())), ("header_values", pa.list_(pa.binary())),
    ("project_id", pa.string()), ("event_id", pa.string()),
    ("dead_at", pa.timestamp("ms", tz="UTC")), ("status", pa.string()), ("replays", pa.uint32()),
    ("updated_at", pa.timestamp("ms", tz="UTC")),
])


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    topic: str
    partition: int
    offset: int
    reason: str
    error: str
    value: bytes | None
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    project_id: str
    event_id: str
    dead_at: int
    """Epoch ms when the worker refused it."""
    status: str = DEAD
    replays: int = 0
    updated_at: int = 0

    @property
    def id(self) -> str:
        """The handle `streamtrack dlq show`/`replay` and the API take: its place in the dead-letter topic."""
        return f"{self.dlq_partition}:{self.dlq_offset}"


def parse_id(text: str) -> tuple[int, int]:
    """`partition:offset` -> (partition, offset); ValueError otherwise."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"a dead letter's id is partition:offset (e.g. 3:1207), not {text!r}")
    return int(partition), int(offset)


def statements(database: str, cluster: str = "") -> list[str]:
    """CREATE TABLE of `dead_letters` (and its Distributed table on a cluster); idempotent."""
    db, here = quote_identifier(database), on_cluster(cluster)
    columns = ",\n".join(f"    `{name}` {type_}" for name, type_ in COLUMNS)
    if cluster:
        engine = f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{TABLE}_local', '{{replica}}', updated_at)"
        settings = ""
    else:
        engine, settings = "ReplacingMergeTree(updated_at)", "\nSETTINGS non_replicated_deduplication_window = 1000"
    found = [
        f"CREATE TABLE IF NOT EXISTS {db}.{quote_identifier(data_table(TABLE, cluster))}{here}\n(\n{columns}\n)\n"
        f"ENGINE = {engine}\nORDER BY {ORDER_BY}{settings}"
    ]
    if cluster:
        found.append(
            f"CREATE TABLE IF NOT EXISTS {db}.`{TABLE}`{here} AS {db}.`{TABLE}_local`\n"
            f"ENGINE = Distributed('{cluster}', '{database}', '{TABLE}_local', cityHash64(project_id))"
        )
    return found


def migrate(store: Any) -> None:
    """Create the table (called by `streamtrack.store.migrate.migrate`)."""
    for statement in statements(store.database, store.cluster):
        store.backend.command(statement)


def insert(store: Any, letters: Sequence[DeadLetter], dedup_token: str | None = None) -> None:
    """Insert rows (new ones, or new versions: a later `updated_at` wins)."""
    if not letters:
        return
    columns: dict[str, list[Any]] = {name: [] for name in _ARROW.names}
    for letter in letters:
        row = dataclasses.asdict(letter)
        headers = row.pop("headers")
        row["header_keys"] = [k for k, _ in headers]
        row["header_values"] = [v for _, v in headers]
        for name in _ARROW.names:
            columns[name].append(row[name])
    table = pa.Table.from_pydict(columns, schema=_ARROW)
    store.backend.insert_events(store.database, TABLE, table, queries.insert_settings(dedup_token, cluster=bool(store.cluster)))


@dataclasses.dataclass(frozen=True)
class Filter:
    project_id: str | None = None
    """None: every project's and the project-less (an admin's view); '' : only the project-less."""
    reason: str | None = None
    status: str | None = DEAD
    since_ms: int | None = None
    until_ms: int | None = None


_SELECT = (
    "SELECT dlq_topic, dlq_partition, dlq_offset, topic, partition, offset, reason, error, "
    "if(isNull(value), NULL, hex(assumeNotNull(value))), if(isNull(key), NULL, hex(assumeNotNull(key))), "
    "header_keys, arrayMap(v -> hex(v), header_values), project_id, event_id, toUnixTimestamp64Milli(dead_at), "
    "status, replays, toUnixTimestamp64Milli(updated_at)"
)


def _where(flt: Filter) -> tuple[list[str], dict[str, Any]]:
    conditions, params = [], {}
    if flt.project_id is not None:
        conditions.append("project_id = {project:String}")
        params["project"] = flt.project_id
    if flt.reason is not None:
        conditions.append("reason = {reason:String}")
        params["reason"] = flt.reason
    if flt.status is not None:
        conditions.append("status = {status:String}")
        params["status"] = flt.status
    if flt.since_ms is not None:
        conditions.append("dead_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')")
        params["since"] = flt.since_ms
    if flt.until_ms is not None:
        conditions.append("dead_at < fromUnixTimestamp64Milli({until:Int64}, 'UTC')")
        params["until"] = flt.until_ms
    return conditions, params


def select(store: Any, flt: Filter, *, limit: int, after: tuple[int, int, int] | None = None) -> list[DeadLetter]:
    """Newest first: (dead_at, partition, offset) descending; `after` is the last row of a page."""
    conditions, params = _where(flt)
    if after is not None:
        conditions.append(
            "(toUnixTimestamp64Milli(dead_at), dlq_partition, dlq_offset) < ({a_ms:Int64}, {a_p:Int32}, {a_o:Int64})"
        )
        params.update(a_ms=after[0], a_p=after[1], a_o=after[2])
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (f"{_SELECT} FROM {quote_identifier(store.database)}.`{TABLE}` FINAL {where}\n"
           f"ORDER BY dead_at DESC, dlq_partition DESC, dlq_offset DESC LIMIT {min(int(limit), MAX_PAGE)}")
    return [_letter(row) for row in store.backend.query(sql, params)]


def get(store: Any, dlq_partition: int, dlq_offset: int, project_id: str | None = None) -> DeadLetter | None:
    """One record by its place in the dead-letter topic (within a project, when given)."""
    conditions = ["dlq_partition = {p:Int32}", "dlq_offset = {o:Int64}"]
    params: dict[str, Any] = {"p": dlq_partition, "o": dlq_offset}
    if project_id is not None:
        conditions.append("project_id = {project:String}")
        params["project"] = project_id
    sql = f"{_SELECT} FROM {quote_identifier(store.database)}.`{TABLE}` FINAL WHERE {' AND '.join(conditions)} LIMIT 1"
    rows = store.backend.query(sql, params)
    return _letter(rows[0]) if rows else None


def counts_by_reason(store: Any, project_id: str | None = None, status: str = DEAD) -> dict[str, int]:
    conditions, params = _where(Filter(project_id=project_id, status=status))
    sql = (f"SELECT reason, count() FROM {quote_identifier(store.database)}.`{TABLE}` FINAL "
           f"WHERE {' AND '.join(conditions)} GROUP BY reason ORDER BY reason")
    return {str(reason): int(count) for reason, count in store.backend.query(sql, params)}


def _bytes(hex_text: str | None) -> bytes | None:
    return None if hex_text is None else bytes.fromhex(hex_text)


def _letter(row: Sequence[Any]) -> DeadLetter:
    (dlq_topic, dlq_partition, dlq_offset, topic, partition, offset, reason, error, value, key,
     header_keys, header_values, project_id, event_id, dead_at, status, replays, updated_at) = row
    return DeadLetter(
        dlq_topic=dlq_topic, dlq_partition=int(dlq_partition), dlq_offset=int(dlq_offset), topic=topic,
        partition=int(partition), offset=int(offset), reason=reason, error=error, value=_bytes(value), key=_bytes(key),
        headers=tuple((k, bytes.fromhex(v)) for k, v in zip(header_keys, header_values, strict=True)),
        project_id=project_id, event_id=event_id, dead_at=int(dead_at), status=status, replays=int(replays),
        updated_at=int(updated_at),
    )
