"""The embedded backend: ClickHouse inside this process (chdb), data in a local folder.

chdb runs one engine per process, on one data folder at a time, and one process per folder
(a second process fails with "Cannot lock file ... status"). So the engine is a module-level
singleton, opened lazily by the first backend and closed when the last one is closed;
every store in the process shares it (API and worker in `streamtrack dev`, all tests).
Opening a second, different folder in the same process is refused with a clear message.

Each thread gets its own chdb connection to that engine (cheap to open: docs/benchmarks.md,
"Measurements behind design choices"), because of three chdb behaviours seen with chdb 4.4:
- `params=` are connection state: two threads running parameterised queries on one
  connection get "Substitution `x` is not set" (or each other's values);
- a streaming insert (`send_insert`) must be alone on its connection;
- when a query fails midway, its partial output stays in the connection and is prepended
  to the next query's result; so a connection that raised is closed, never reused.
Inserts stream Arrow IPC bytes (`send_insert(..., "ArrowStream")`): faster than
`INSERT ... SELECT * FROM Python(tbl)` (same page), and no lookup of a Python variable by
name in the caller's frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
from chdb.session import Session

from streamtrack.errors import ConfigError, StoreUnavailable
from streamtrack.store import queries
from streamtrack.store.backend import QuerySettings, bound_error, error_code, is_retryable_code, with_settings

# chdb parses parameter values as escaped text (like TSV fields), not verbatim:
# unescaped, "a\tb" fails to parse and "a\\b" silently becomes another string.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


class _JSONCompact(msgspec.Struct):
    data: list[tuple[Any, ...]]


_decode_result = msgspec.json.Decoder(_JSONCompact).decode


@dataclasses.dataclass(eq=False)
class _Engine:
    path: str
    keeper: Session
    """Holds the engine up while stores are open, whatever happens to per-thread connections."""
    users: int = 0
    closed: bool = False
    local: threading.local = dataclasses.field(default_factory=threading.local)
    # Weak: a thread that ends drops its connection (its thread-local goes, Session.__del__ closes it).
    sessions: weakref.WeakSet[Session] = dataclasses.field(default_factory=weakref.WeakSet)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def session(self) -> Session:
        """This thread's connection, opened on first use."""
        session: Session | None = getattr(self.local, "session", None)
        if session is None:
            if self.closed:
                raise StoreUnavailable("the embedded ClickHouse store is closed")
            session = _connect(self.path)
            with self.lock:
                self.sessions.add(session)
            self.local.session = session
        return session

    def discard(self) -> None:
        """Close this thread's connection after an error (see the module docstring)."""
        session, self.local.session = getattr(self.local, "session", None), None
        if session is not None:
            session.close()

    def close(self) -> None:
        self.closed = True
        with self.lock:
            sessions = list(self.sessions)
        for session in sessions:
            session.close()
        self.keeper.close()


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _connect(path: str) -> Session:
    try:
        session = Session(path)
    except RuntimeError as exc:
        if "already initialized with path" in str(exc):
            raise ConfigError(f"chdb already runs on another data folder in this process: {exc}") from exc
        raise StoreUnavailable(
            f"cannot open the embedded ClickHouse data in {path}: {exc}. Only one process can use a data "
            "folder: is another StreamTrack process running with the same STREAMTRACK_DATA_DIR?"
        ) from exc
    try:
        # JSONCompact quotes 64-bit integers by default; counts and epoch-ms times should be numbers.
        session.query("SET output_format_json_quote_64bit_integers = 0")
    except BaseException:
        session.close()
        raise
    return session


def _acquire(path: Path) -> _Engine:
    global _engine
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the embedded ClickHouse data folder {path}: {exc}") from exc
    real = os.path.realpath(path)  # chdb compares folders as strings: one spelling per folder
    if "?" in real:
        raise ConfigError(f"the data folder {real!r} must not contain '?' (chdb reads it as options)")
    with _engine_lock:
        if _engine is None:
            _engine = _Engine(real, _connect(real))
        elif _engine.path != real:
            raise ConfigError(
                f"the embedded ClickHouse already runs on {_engine.path} in this process; chdb allows one "
                f"data folder per process, so {real} cannot be opened until every store on it is closed"
            )
        _engine.users += 1
        return _engine


def _release(engine: _Engine) -> None:
    global _engine
    with _engine_lock:
        engine.users -= 1
        if engine.users > 0:
            return
        if _engine is engine:
            _engine = None
    engine.close()


@contextlib.contextmanager
def _connection(engine: _Engine) -> Iterator[Session]:
    """This thread's connection; on an error it is discarded, and availability errors are retryable."""
    session = engine.session()
    try:
        yield session
    except RuntimeError as exc:  # chdb's ChdbError, and the plain RuntimeError of streaming inserts
        engine.discard()
        if is_retryable_code(error_code(str(exc))):
            raise StoreUnavailable(f"embedded ClickHouse: {exc}") from exc
        raise


def _encode_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    encoded = {}
    for name, value in params.items():
        if isinstance(value, str):
            encoded[name] = value.translate(_ESCAPES)
        elif isinstance(value, int) and not isinstance(value, bool):
            encoded[name] = str(value)
        elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            # Array(String): an array literal; its quoted elements are escaped like a String value.
            quoted = ("'" + item.translate(_ESCAPES).replace("'", "\\'") + "'" for item in value)
            encoded[name] = "[" + ",".join(quoted) + "]"
        else:
            raise TypeError(
                f"parameter {name!r}: only str, int and lists of str are supported, got {type(value).__name__}"
            )
    return encoded


def _arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class EmbeddedBackend:
    """ClickHouse in this process; data under `path`. Thread-safe."""

    name = "embedded"

    def __init__(self, path: Path) -> None:
        self._engine: _Engine | None = _acquire(Path(path))
        self.path = self._engine.path
        self._close_lock = threading.Lock()

    def _live(self) -> _Engine:
        engine = self._engine
        if engine is None:
            raise StoreUnavailable("the embedded ClickHouse store is closed")
        return engine

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with _connection(self._live()) as session:
            session.query(sql, "CSV", params=_encode_params(params))

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, settings: QuerySettings | None = None
    ) -> list[tuple[Any, ...]]:
        try:
            with _connection(self._live()) as session:
                result = session.query(with_settings(sql, settings), "JSONCompact", params=_encode_params(params))
        except (RuntimeError, StoreUnavailable) as exc:
            if (bounded := bound_error(exc, settings)) is not None:
                raise bounded from exc
            raise
        return _decode_result(result.bytes()).data

    def insert_events(self, database: str, table: str, data: pa.Table, settings: Mapping[str, str | int]) -> None:
        sql = queries.insert_statement(database, table, data.column_names, dict(settings))
        payload = _arrow_stream(data)
        with _connection(self._live()) as session, session.send_insert(sql, "ArrowStream") as inserter:
            inserter.append(payload)
            inserter.finish()

    def close(self) -> None:
        with self._close_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            _release(engine)
