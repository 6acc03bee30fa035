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

from streamtrack.errors import QueryLimitExceeded, QueryTooLarge, StreamTrackError

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


QuerySettings = Mapping[str, int | float]
"""Per-query ClickHouse settings (the API's read bounds: max_execution_time, max_memory_usage, ...)."""

# Errors a bounded query raises when it hits one of its own settings, not a store failure.
_TOO_LARGE_CODES = frozenset({158, 307})  # TOO_MANY_ROWS, TOO_MANY_BYTES
_OVER_LIMIT_CODES = frozenset({159, 160, 241})  # TIMEOUT_EXCEEDED, TOO_SLOW, MEMORY_LIMIT_EXCEEDED
_SETTING_NAME = re.compile(r"^[a-z_]+$")


def with_settings(sql: str, settings: QuerySettings | None) -> str:
    """`sql` with a trailing SETTINGS clause (what chdb, which takes no settings argument, needs).

    Names are fixed identifiers and values numbers, never user input; checked anyway.
    """
    if not settings:
        return sql
    parts = []
    for name, value in settings.items():
        if not _SETTING_NAME.match(name) or isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"query setting {name}={value!r}: a lower-case name and a number")
        parts.append(f"{name} = {value!r}")
    return f"{sql}\nSETTINGS {', '.join(parts)}"


def bound_error(exc: BaseException, settings: QuerySettings | None) -> StreamTrackError | None:
    """The error to raise when a query run with `settings` failed on one of its bounds, else None."""
    if not settings:
        return None
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        code = error_code(str(exc))
    if code in _TOO_LARGE_CODES:
        return QueryTooLarge("this query would read more data than one query may here; narrow 'from'/'to' or add a filter")
    if code in _OVER_LIMIT_CODES:
        what = "memory" if code == 241 else "time"
        return QueryLimitExceeded(f"this query ran out of its {what} bound; retry later or narrow it", retry_after=5)
    return None


class Backend(Protocol):
    """One way to reach ClickHouse. Implementations are safe to share between threads."""

    name: str
    """"embedded" or "server", for logs and benchmarks."""

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL)."""

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, settings: QuerySettings | None = None
    ) -> list[tuple[Any, ...]]:
        """Run a SELECT; rows as tuples of plain Python values (int, str, list).

        With `settings`, a bound the query hits raises QueryTooLarge or QueryLimitExceeded."""

    def insert_events(self, database: str, table: str, data: pa.Table, settings: Mapping[str, str | int]) -> None:
        """Insert an Arrow table whose columns match the table's; a repeated token is dropped."""

    def close(self) -> None:
        """Release connections; idempotent."""
