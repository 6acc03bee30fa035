"""The console: readable log lines on a terminal, JSON lines elsewhere, and no line per request in
`streamtrack dev` unless STREAMTRACK_ACCESS_LOG asks for them.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog
from litestar import Litestar, get
from litestar.testing import TestClient
from structlog.testing import capture_logs

from streamtrack.api.telemetry import RequestTelemetry
from streamtrack.cli import _parser, overrides
from streamtrack.config import load_settings

LOG_ONE_LINE = (
    "import sys; from streamtrack.telemetry import configure_logging; import structlog\n"
    "configure_logging('info', json={'auto': None, 'json': True, 'console': False}[sys.argv[1]])\n"
    "structlog.get_logger().info('worker started', topic='events')\n"
)


def logged(log_format: str, *, terminal: bool) -> str:
    """What one log call writes to stderr, with stderr a terminal (a pseudo-terminal) or a pipe."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    command = [sys.executable, "-c", LOG_ONE_LINE, log_format]
    if not terminal:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True).stderr
    controller, follower = pty.openpty()
    try:
        subprocess.run(command, env=env, stderr=follower, stdout=subprocess.DEVNULL, timeout=60, check=True)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed and nothing is left
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(controller)


def test_a_terminal_gets_readable_lines_and_a_pipe_json() -> None:
    on_terminal = logged("auto", terminal=True)
    assert "worker started" in on_terminal and "topic" in on_terminal and not on_terminal.lstrip().startswith("{")
    assert "\x1b[" in on_terminal, "colours on a terminal"
    piped = json.loads(logged("auto", terminal=False))
    assert (piped["event"], piped["topic"], piped["level"]) == ("worker started", "events", "info")


def test_the_format_can_be_forced() -> None:
    assert json.loads(logged("json", terminal=True).strip())["event"] == "worker started"
    piped = logged("console", terminal=False)
    assert "worker started" in piped and "topic=events" in piped and "\x1b[" not in piped, "no colours in a pipe"


@pytest.mark.parametrize(("argv", "environ", "access_log"), [
    (["dev"], {}, False),
    (["dev"], {"STREAMTRACK_ACCESS_LOG": "on"}, True),
    (["api"], {}, True),
    (["api"], {"STREAMTRACK_ACCESS_LOG": "off"}, False),
])
def test_dev_has_no_access_lines_unless_asked(argv: list[str], environ: dict[str, str], access_log: bool) -> None:
    settings = load_settings(env=environ, **overrides(_parser().parse_args(argv), environ))
    assert settings.access_log is access_log


@pytest.fixture()
def restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@get("/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


@pytest.mark.parametrize("access_log", [True, False])
def test_the_access_log_setting_decides_the_request_lines(access_log: bool, restore_logging: None) -> None:
    app = Litestar([ping])
    app.asgi_handler = RequestTelemetry(app.asgi_handler, access_log)
    with capture_logs() as lines, TestClient(app) as client:
        assert client.get("/ping").status_code == 200
    requests = [line for line in lines if line["event"] == "request"]
    expected = [{"method": "GET", "path": "/ping", "status": 200}] if access_log else []
    assert [{k: line[k] for k in ("method", "path", "status")} for line in requests] == expected
