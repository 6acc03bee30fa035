"""The dev-mode control behind /dev/loadgen: start, stop and watch one load generator.

The generator runs as a child process (`streamtrack loadgen --progress json`), not as a
thread of the API: at 10,000 events/s building and encoding events would otherwise take
the API's GIL from the requests it is being loaded with. The child prints its status as a
JSON line each second; a reader thread keeps the latest one. The child's stdin is a pipe
from us: if the API process dies, the pipe closes and the child stops by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

STOP_TIMEOUT_S = 15.0


def idle_status(rate: float | None = None) -> dict[str, Any]:
    return {
        "running": False, "rate": rate, "sent": 0, "accepted": 0, "errors": 0, "achieved_rate": 0.0,
        "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "elapsed_s": 0.0,
    }


class LoadgenControl:
    """At most one generator at a time; starting a new one stops the old one first."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        """The API the generator loads (this process's own address in dev mode)."""
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._status = idle_status()

    def start(self, rate: float, duration_s: float | None = None) -> dict[str, Any]:
        if not self.url:
            raise RuntimeError("LoadgenControl.url is not set")
        with self._lock:
            self._stop_locked()
            command = [sys.executable, "-m", "streamtrack.cli", "loadgen", "--url", self.url,
                       "--rate", f"{rate:g}", "--progress", "json", "--stop-on-eof"]
            if duration_s is not None:
                command += ["--duration", f"{duration_s:g}"]
            # and -m: the child imports the installed package, never a folder named like
            # a standard-library module from its working directory.
            child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self._child = child
            self._status = {**idle_status(rate), "running": True}
            self._reader = threading.Thread(target=self._read, args=(child,), name="loadgen-status", daemon=True)
            self._reader.start()
            return dict(self._status)

    def stop(self) -> dict[str, Any]:
        """Stop the generator (its requests in flight finish) and return its final status."""
        with self._lock:
            self._stop_locked()
            return dict(self._status)

    def status(self) -> dict[str, Any]:
        return dict(self._status)

    def _stop_locked(self) -> None:
        child, reader = self._child, self._reader
        if child is None:
            return
        if child.poll() is None:
            child.terminate()  # SIGTERM: the child stops sending, finishes, prints its last status
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if reader is not None:
            reader.join(STOP_TIMEOUT_S)
        self._child = self._reader = None
        self._status = {**self._status, "running": False}

    def _read(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        with child.stdout:
            for line in child.stdout:
                try:
                    status = json.loads(line)
                except ValueError:
                    continue  # not a status line; the child's own messages go to stderr
                if isinstance(status, dict):
                    self._status = status
        child.wait()
        if child.stdin is not None:
            child.stdin.close()
        self._status = {**self._status, "running": False}
