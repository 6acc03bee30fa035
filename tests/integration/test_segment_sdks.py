"""The official SDKs, unchanged, pointed at a running StreamTrack: every call type stored exactly once.

Each SDK runs as its own program (tests/sdk/send_python.py, send_node.js) from .sdk/, which
scripts/sdk-clients installs at the versions pinned in tests/sdk/ (make test runs it; so does
this module if needed). It talks to the real pipeline through a loopback proxy that forwards
every request but answers the first one with a 503 after StreamTrack accepted it: a response
lost on the way back, the case where SDKs retry the same messages. They must still be stored
once, read back through /activities, the analytics endpoints and the identity endpoints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import load_settings
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from streamtrack.store.keys import add_key, create_project, migrate_keys
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / ".sdk"
SENDERS = ROOT / "tests" / "sdk"
LIBRARIES = {
    "segment-python": "analytics-python",
    "rudder-python": "analytics-python",
    "segment-node": "@segment/analytics-node",
}
EXPECTED_TYPES = {"page_view": 1, "$identify": 2, "Signed Up": 1, "screen_view": 1, "$group": 1, "$alias": 1}


@pytest.fixture(scope="module")
def sdk_clients() -> Path:
    """The SDKs' folder, installed (or brought up to date with the pins) by scripts/sdk-clients."""
    subprocess.run([str(ROOT / "scripts" / "sdk-clients")], check=True, timeout=600, cwd=ROOT)
    return SDK


class LosingProxy:
    """Forwards to StreamTrack; the first request's answer is replaced by a 503 (after it was stored)."""

    def __init__(self, target: str) -> None:
        self.requests: list[int] = []
        """StreamTrack's status for each forwarded request."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                answer = httpx.post(target + self.path, content=body, headers=headers, timeout=30)
                proxy.requests.append(answer.status_code)
                status, content = answer.status_code, answer.content
                if len(proxy.requests) == 1:
                    status, content = (
                        503,
                        b'{"status":503,"code":"unavailable","message":"lost on the way back"}',
                    )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LosingProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(pipeline: Pipeline) -> Iterator[LosingProxy]:
    with LosingProxy(pipeline.url) as running:
        yield running


def _command(
    sdk: str, sdk_dir: Path, host: str, ids: tuple[str, str, str]
) -> tuple[list[str], dict[str, str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    if sdk == "segment-node":
        node = shutil.which("node")
        if node is None or not (sdk_dir / "node" / "node_modules" / "@segment" / "analytics-node").is_dir():
            pytest.fail(
                "no Node.js on this machine, or `make sdk-clients` (a prerequisite of `make test`) could not"
                " install @segment/analytics-node: the Node SDK is one of the clients the Segment API is tested with"
            )
        env["NODE_PATH"] = str(sdk_dir / "node" / "node_modules")
        return [node, str(SENDERS / "send_node.js"), host, *ids], env
    python = sdk_dir / "python" / "bin" / "python"
    return [str(python), str(SENDERS / "send_python.py"), sdk.split("-")[0], host, *ids], env


@pytest.mark.parametrize("sdk", ["segment-python", "rudder-python", "segment-node"])
def test_sdk_calls_are_stored_exactly_once(
    sdk: str, sdk_clients: Path, pipeline: Pipeline, proxy: LosingProxy
) -> None:
    run = uuid.uuid4().hex[:8]
    user, anonymous, group = f"{sdk}-{run}", f"anon-{sdk}-{run}", f"group-{sdk}-{run}"
    command, env = _command(sdk, sdk_clients, proxy.url, (user, anonymous, group))

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    assert len(proxy.requests) >= 2, "the SDK did not retry the request whose answer was lost"
    assert set(proxy.requests) == {200}, proxy.requests
    expected = sum(EXPECTED_TYPES.values())
    with pipeline.client() as client:

        def stored() -> list[dict]:
            return client.get("/activities", params={"user_id": user, "limit": 100}).json()["data"]

        pipeline.wait_for(lambda: len(stored()) >= expected, what=f"{expected} events of {sdk}")
        events = stored()
        assert Counter(e["event_type"] for e in events) == EXPECTED_TYPES  # the retried batch is stored once
        by_type = {e["event_type"]: e for e in events}
        assert by_type["page_view"]["url"] == "https://shop.example/pricing"
        assert by_type["page_view"]["anonymous_id"] == anonymous
        assert by_type["page_view"]["properties"]["name"] == "Pricing"
        assert by_type["page_view"]["properties"]["category"] == "Docs"
        assert by_type["screen_view"]["properties"]["name"] == "Home"
        assert by_type["Signed Up"]["properties"]["plan"] == "free"
        assert by_type["$alias"]["properties"]["previous_id"] == f"{user}-old"
        assert (
            by_type["Signed Up"]["properties"]["$context"]["library"]["name"] == LIBRARIES[sdk]
        )  # context kept

        breakdown = client.get(
            "/analytics/breakdown", params={"dimension": "event_type", "user_id": user}
        ).json()
        assert {row["value"]: row["events"] for row in breakdown["rows"]} == EXPECTED_TYPES

        pipeline.wait_for(
            lambda: client.get(f"/groups/{group}").status_code == 200, what="the group's traits"
        )
        profile = client.get(f"/users/{anonymous}").json()  # asked by the anonymous id: the user it became
        assert profile["user_id"] == user
        assert sorted(profile["ids"]) == sorted([user, anonymous, f"{user}-old"])
        assert profile["traits"] == {"email": f"{user}@example.com", "plan": "pro"}
        assert profile["identify_calls"] == 2
        group_profile = client.get(f"/groups/{group}").json()
        assert group_profile["traits"] == {"name": "Acme", "employees": 40}
        assert group_profile["members"] == [user]


def test_sdk_with_a_projects_write_key_lands_in_that_project_only(
    sdk_clients: Path, broker: KafkaCluster, store: EventStore, engine_path: Path
) -> None:
    """Auth on, as deployed: the SDK's write key (HTTP Basic) picks the project; its read key reads it back."""
    env = pipeline_env(
        broker,
        store.database,
        engine_path.parent,
        STREAMTRACK_AUTH="on",
        STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0",
        STREAMTRACK_RATE_LIMIT_KEY_PER_S="0",
    )
    running, stop = start_pipeline(load_settings(env=env), store)
    try:
        migrate_keys(store)
        keys = {}
        for name in ("shop", "other"):
            project = f"{name}-{uuid.uuid4().hex[:6]}"
            create_project(store, project, name)
            write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
            add_key(store, project, write)
            add_key(store, project, read)
            keys[name] = (write.secret, read.secret)
        run = uuid.uuid4().hex[:8]
        user, anonymous, group = f"keyed-{run}", f"anon-keyed-{run}", f"group-keyed-{run}"
        command, env = _command("segment-python", sdk_clients, running.url, (user, anonymous, group))
        done = subprocess.run(
            [*command, keys["shop"][0]], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]

        def reader(name: str) -> httpx.Client:
            return running.client(headers={"Authorization": f"Bearer {keys[name][1]}"})

        with reader("shop") as shop, reader("other") as other:

            def events(client: httpx.Client) -> list[dict]:
                return client.get("/activities", params={"user_id": user, "limit": 100}).json()["data"]

            running.wait_for(
                lambda: len(events(shop)) == sum(EXPECTED_TYPES.values()), what="the SDK's events"
            )
            assert Counter(e["event_type"] for e in events(shop)) == EXPECTED_TYPES
            running.wait_for(
                lambda: shop.get(f"/groups/{group}").status_code == 200, what="the group's traits"
            )
            assert shop.get(f"/users/{anonymous}").json()["traits"] == {
                "email": f"{user}@example.com",
                "plan": "pro",
            }
            assert events(other) == []  # another project's read key sees none of it
            assert other.get(f"/users/{anonymous}").status_code == 404
            assert other.get(f"/groups/{group}").status_code == 404
            wrong = httpx.post(
                f"{running.url}/v1/track",
                json={"userId": "u", "event": "E"},
                auth=("not-a-key", ""),
                timeout=10,
            )
            assert wrong.status_code == 401
    finally:
        stop()
