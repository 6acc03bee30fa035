"""`streamtrack smoke --url URL`: is a deployment answering end to end?

Jenkins runs it after `helm upgrade`, and people run it after an install. It walks the
path a real event takes: `/healthz` (the process serves), `/readyz` (Kafka and ClickHouse
answer), `POST /track` of one uniquely named event, then `GET /activities` for that event's
user until the worker has stored it. Only the last step proves the whole pipeline, so it
is polled until a deadline rather than checked once: the worker stores in batches.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping

import httpx


class SmokeFailure(Exception):
    """A step of the smoke test failed; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class SmokeResult:
    event_id: str
    user_id: str
    seconds_to_visible: float


def run_smoke(
    url: str,
    *,
    timeout_s: float = 60.0,
    headers: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
    write_key: str | None = None,
    read_key: str | None = None,
) -> SmokeResult:
    """Track one event and wait until /activities returns it; raise SmokeFailure otherwise."""
    suffix = uuid.uuid4().hex[:12]
    event_id, user_id = f"smoke-{suffix}", f"smoke-user-{suffix}"
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url.rstrip("/"), timeout=10.0, headers=dict(headers or {})) as client:
        _expect(client, "GET", "/healthz", 200, say)
        _wait_ready(client, deadline, say)
        sent = time.monotonic()
        event = {"event_type": "smoke_test", "event_id": event_id, "user_id": user_id, "properties": {"source": "streamtrack smoke"}}
        write = {"Authorization": f"Bearer {write_key}"} if write_key else {}
        read = {"Authorization": f"Bearer {read_key}"} if read_key else {}
        _expect(client, "POST", "/track", 202, say, json=event, headers=write)
        while True:
            response = _request(client, "GET", "/activities", params={"user_id": user_id, "limit": 10}, headers=read)
            if response.status_code == 200 and any(row.get("event_id") == event_id for row in response.json()["data"]):
                took = time.monotonic() - sent
                say(f"ok   GET /activities finds {event_id} after {took:.1f} s")
                return SmokeResult(event_id, user_id, took)
            if response.status_code != 200:
                raise SmokeFailure(f"GET /activities answered {response.status_code}: {response.text[:300]}")
            if time.monotonic() > deadline:
                raise SmokeFailure(
                    f"GET /activities did not return {event_id} within {timeout_s:.0f} s: "
                    "the API accepted it, so check the worker (logs, consumer lag) and ClickHouse"
                )
            time.sleep(0.5)


def _request(client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        raise SmokeFailure(f"{method} {client.base_url}{path}: {exc.__class__.__name__}: {exc}") from exc


def _expect(
    client: httpx.Client, method: str, path: str, status: int, say: Callable[[str], None], **kwargs: object
) -> httpx.Response:
    response = _request(client, method, path, **kwargs)
    if response.status_code != status:
        raise SmokeFailure(f"{method} {path} answered {response.status_code}, expected {status}: {response.text[:300]}")
    say(f"ok   {method} {path} -> {status}")
    return response


def _wait_ready(client: httpx.Client, deadline: float, say: Callable[[str], None]) -> None:
    """/readyz may say 503 for a while right after a rollout: wait for it, up to the deadline."""
    while True:
        response = _request(client, "GET", "/readyz")
        if response.status_code == 200:
            say("ok   GET /readyz -> 200")
            return
        if time.monotonic() > deadline:
            raise SmokeFailure(f"GET /readyz still answers {response.status_code}: {response.text[:300]}")
        time.sleep(1.0)


def parse_headers(raw: list[str]) -> dict[str, str]:
    """`Name: value` strings from the command line (e.g. an auth header) into a dict."""
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SmokeFailure(f"--header expects 'Name: value', got {item!r}")
        headers[name.strip()] = value.strip()
    return headers
