"""Slow and oversized clients, over raw sockets on loopback: header and body deadlines, header
size and count limits, and a client that leaves mid-body counted as 499, never as a 500.

The API under test has short limits (1 s deadlines, 4 KiB and 20 headers); the sockets'
own timeouts only bound the test, nothing asserts on how long anything took.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from streamtrack.api import Services, create_app
from streamtrack.api.server import BackgroundServer
from streamtrack.kafka import EventProducer
from streamtrack.normalize import Limits
from streamtrack.telemetry import metrics
from tests.fixtures.pipeline import Pipeline

SOCKET_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def api(pipeline: Pipeline) -> Iterator[tuple[str, int]]:
    settings = pipeline.settings.replace(
        http_header_timeout_seconds=1, http_body_timeout_seconds=1, http_max_header_bytes=4096, http_max_headers=20
    )
    services = Services(settings, EventProducer(settings), pipeline.store, Limits())
    server = BackgroundServer(create_app(services))
    server.server.config.timeout_keep_alive = 2  # an idle connection's bound, short for the test
    server.start()
    host, port = server.url.removeprefix("http://").split(":")
    yield host, int(port)
    server.stop()
    services.close()


def connect(api: tuple[str, int]) -> socket.socket:
    return socket.create_connection(api, timeout=SOCKET_TIMEOUT_S)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a test that hangs fails here)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    return received


def answer(raw: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body else {}


def count(route: str, status: str) -> float:
    return metrics.HTTP_REQUESTS.labels("POST", route, status)._value.get()


def test_headers_that_never_finish_get_408_and_the_connection_closed(api: tuple[str, int]) -> None:
    before = metrics.HTTP_REFUSED.labels("header_timeout")._value.get()
    sock = connect(api)
    sock.sendall(b"POST /track HTTP/1.1\r\nHost: t\r\nContent-Type: app")  # ... and nothing more
    status, headers, body = answer(read_until_closed(sock))
    assert (status, body["code"], headers["connection"]) == (408, "request_timeout", "close")
    assert "headers did not arrive within 1 s" in str(body["message"])
    assert metrics.HTTP_REFUSED.labels("header_timeout")._value.get() == before + 1


def test_a_connection_that_sends_nothing_is_closed(api: tuple[str, int]) -> None:
    sock = connect(api)
    assert read_until_closed(sock) == b""  # closed after the keep-alive timeout, without an answer


def test_headers_over_the_size_limit_get_431(api: tuple[str, int]) -> None:
    for request in (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",  # in one read
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 5000,  # still arriving
        b"GET /healthz?" + b"q" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",  # the request line counts too
    ):
        sock = connect(api)
        sock.sendall(request)
        status, headers, body = answer(read_until_closed(sock))
        assert (status, body["code"], headers["connection"]) == (431, "headers_too_large", "close"), request[:40]
        assert "4096 bytes" in str(body["message"])


def test_too_many_headers_get_431(api: tuple[str, int]) -> None:
    sock = connect(api)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(25)) + b"\r\n")
    status, _, body = answer(read_until_closed(sock))
    assert (status, body["code"]) == (431, "headers_too_large") and "more than 20 headers" in str(body["message"])


def test_a_body_that_never_finishes_gets_408_and_the_connection_closed(api: tuple[str, int]) -> None:
    before = count("/track", "408")
    sock = connect(api)
    sock.sendall(b"POST /track HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"ev")
    status, headers, body = answer(read_until_closed(sock))
    assert (status, body["code"], headers["connection"]) == (408, "request_timeout", "close")
    assert "body did not arrive within 1 s" in str(body["message"])
    assert count("/track", "408") == before + 1


def test_a_client_that_leaves_mid_body_is_a_499_not_a_500(api: tuple[str, int], pipeline: Pipeline) -> None:
    routes = ("/track", "/batch", "/v1/track")
    before = {route: (count(route, "499"), count(route, "500")) for route in routes}
    for route in routes:
        sock = connect(api)
        sock.sendall(f"POST {route} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n".encode()
                     + b"Authorization: Basic YW55Og==\r\nContent-Length: 5000\r\n\r\n[{\"event_type\":")
        sock.close()
    for route in routes:
        pipeline.wait_for(lambda route=route: count(route, "499") == before[route][0] + 1, what=f"{route} counted 499")
        assert count(route, "500") == before[route][1]


def test_well_behaved_requests_pass_and_reuse_the_connection(api: tuple[str, int]) -> None:
    event = json.dumps({"event_type": "page_view", "user_id": "raw-socket"}).encode()
    track = (b"POST /track HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(event)
             + event)
    sock = connect(api)
    sock.sendall(track)
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 202 "), first
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + b"X-Pad: p\r\n" * 15 + b"\r\n")
    status, headers, body = answer(read_until_closed(sock))
    assert status == 200 and headers["x-content-type-options"] == "nosniff"
