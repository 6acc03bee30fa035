"""The server backend: a ClickHouse server over HTTP(S) through clickhouse-connect.

Kept thin on purpose: no modern ClickHouse server runs on the development machines, so
everything that can be shared with the embedded backend (SQL, parameters, Arrow batches)
is, and this module only connects, forwards and maps errors.

A clickhouse-connect client must not run two queries at once, so each thread gets its own
(they share clickhouse-connect's connection pool, so a client is cheap). Server-side
parameters: given a dict and SQL containing `{name:Type}`, clickhouse-connect sends the
values as `param_<name>` fields that the server parses as data (driver/binding.py,
`bind_query`), the same contract as chdb's `params=`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
from clickhouse_connect import get_client
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from streamtrack.errors import ConfigError, StoreUnavailable
from streamtrack.store.backend import QuerySettings, bound_error, error_code, is_retryable_code


@dataclasses.dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)
    secure: bool
    database: str
    """The database named in the URL path, or "" (then STREAMTRACK_CLICKHOUSE_DATABASE applies)."""


def parse_url(url: str) -> ServerAddress:
    """Split `http(s)://user:password@host:port/database`; user and password may be %-encoded."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(
            f"CLICKHOUSE_URL must look like http(s)://user:password@host:port/database, got {url!r}"
        )
    secure = parsed.scheme == "https"
    try:
        port = parsed.port or (8443 if secure else 8123)
    except ValueError as exc:
        raise ConfigError(f"CLICKHOUSE_URL has an invalid port: {exc}") from exc
    return ServerAddress(
        host=parsed.hostname,
        port=port,
        username=unquote(parsed.username or "default"),
        password=unquote(parsed.password or ""),
        secure=secure,
        database=parsed.path.strip("/"),
    )


def connect(address: ServerAddress) -> Client:
    """A new client. No default database: the store's database may not exist until migrate()."""
    return get_client(
        host=address.host,
        port=address.port,
        username=address.username,
        password=address.password,
        secure=address.secure,
        connect_timeout=5,
        send_receive_timeout=60,
        autogenerate_session_id=False,  # a session id would forbid concurrent queries on it
    )


@contextlib.contextmanager
def _availability_errors() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:  # connection refused, timeouts, a lost connection, HTTP 5xx
        raise StoreUnavailable(f"ClickHouse server unavailable: {exc}") from exc
    except DatabaseError as exc:
        code = exc.code if exc.code is not None else error_code(str(exc))
        if is_retryable_code(code):
            raise StoreUnavailable(f"ClickHouse server: {exc}") from exc
        raise


class ServerBackend:
    """ClickHouse over HTTP; `connect` makes one client (called once per thread)."""

    name = "server"

    def __init__(self, connect: Callable[[], Client]) -> None:
        self._connect = connect
        self._local = threading.local()
        # Weak: a thread that ends takes its client with it.
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    def _client(self) -> Client:
        if self._closed:
            raise StoreUnavailable("the ClickHouse store is closed")
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            with _availability_errors():
                client = self._connect()
            with self._lock:
                self._clients.add(client)
            self._local.client = client
        return client

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        client = self._client()
        with _availability_errors():
            client.command(sql, parameters=dict(params) if params else None)

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, settings: QuerySettings | None = None
    ) -> list[tuple[Any, ...]]:
        client = self._client()
        try:
            with _availability_errors():
                result = client.query(
                    sql, parameters=dict(params) if params else None, settings=dict(settings) if settings else None
                )
                return [tuple(row) for row in result.result_rows]
        except (DatabaseError, StoreUnavailable) as exc:
            if (bounded := bound_error(exc, settings)) is not None:
                raise bounded from exc
            raise

    def insert_events(self, database: str, table: str, data: pa.Table, settings: Mapping[str, str | int]) -> None:
        client = self._client()
        with _availability_errors():
            client.insert_arrow(table, data, database=database, settings=dict(settings))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients = list(self._clients)
            self._clients.clear()
        for client in clients:
            client.close()
