"""The small interface both ClickHouse backends implement, and which of their errors are retryable.

`EventStore` speaks only this Protocol, so the embedded engine (chdb) and a real server
(clickhouse-connect) run the same SQL with the same `{name:Type}` parameters.

Error policy: an error about *availability* (the server is unreachable, overloaded, out of
memory, read-only, a replica is missing...) becomes `StoreUnavailable`, which callers retry
or answer with 503. Anything else (syntax, unknown column, bad parameter) is a bug in our
SQL and propagates unchanged so it is seen, not retried forever.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

import pyarrow as pa

# ClickHouse error codes that mean "try again later", not "your query is wrong".
RETRYABLE_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED (server shutting down)
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
    }
)

_CODE = re.compile(r"\bCode:\s*(\d+)")


def error_code(message: str) -> int | None:
    """The ClickHouse error code in an exception message ("Code: 241. DB::Exception: ...")."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


def is_retryable_code(code: int | None) -> bool:
    return code in RETRYABLE_CODES


class Backend(Protocol):
    """One way to reach ClickHouse. Implementations are safe to share between threads."""

    name: str
    """"embedded" or "server", for logs and benchmarks."""

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL)."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a SELECT; rows as tuples of plain Python values (int, str, list)."""

    def insert_events(self, database: str, table: str, data: pa.Table, dedup_token: str | None) -> None:
        """Insert an Arrow table whose columns match the table's; a repeated token is dropped."""

    def close(self) -> None:
        """Release connections; idempotent."""
