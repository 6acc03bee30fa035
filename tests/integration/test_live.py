"""`GET /activities/stream` on Apache Kafka: pushed events, filters and keys, heartbeats, resume,
a slow client dropped without slowing anyone, and the per-key limit.

Each stream is read with httpx as a browser's EventSource reads it (text/event-stream, `id:`,
`Last-Event-ID`); the slow client is a raw socket with a tiny receive buffer that stops reading.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import load_settings
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.store import EventStore
from streamtrack.store.keys import add_key, create_project, migrate_keys
from streamtrack.telemetry.metrics import LIVE_DROPPED
from tests.fixtures.pipeline import Pipeline, pipeline_env, start_pipeline

BUFFER = 1000
REPLAY = 20
STREAMS = 2


@dataclasses.dataclass
class Keys:
    write: str
    read: str


@dataclasses.dataclass
class Live:
    pipeline: Pipeline
    a: Keys
    b: Keys

    def post(self, keys: Keys, events: list[dict]) -> None:
        with self.pipeline.client(headers={"Authorization": f"Bearer {keys.write}"}) as client:
            for start in range(0, len(events), 200):
                response = client.post("/batch", json=events[start:start + 200])
                assert response.status_code == 202 and response.json()["accepted"] == len(events[start:start + 200])


def make_keys(store: EventStore, name: str) -> Keys:
    project = f"{name}-{uuid.uuid4().hex[:6]}"
    create_project(store, project, name)
    write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
    add_key(store, project, write)
    add_key(store, project, read)
    return Keys(write.secret, read.secret)


@pytest.fixture(scope="module")
def live(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[Live]:
    env = pipeline_env(
        broker, store.database, engine_path.parent, STREAMTRACK_AUTH="on",
        STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0", STREAMTRACK_RATE_LIMIT_KEY_PER_S="0",
        STREAMTRACK_QUERY_CONCURRENCY_PER_KEY="1", STREAMTRACK_LIVE_HEARTBEAT_SECONDS="1",
        STREAMTRACK_LIVE_BUFFER_EVENTS=str(BUFFER), STREAMTRACK_LIVE_REPLAY_EVENTS=str(REPLAY),
        STREAMTRACK_LIVE_STREAMS_PER_KEY=str(STREAMS),
    )
    running, stop = start_pipeline(load_settings(env=env), store, with_worker=False)  # the feed reads Kafka
    migrate_keys(store)
    yield Live(running, make_keys(store, "a"), make_keys(store, "b"))
    stop()


@dataclasses.dataclass
class Message:
    id: str | None
    event: str
    data: dict | None


class Stream:
    """One SSE stream read line by line; `comments` keeps the heartbeats."""

    def __init__(self, live: Live, key: str, params: dict[str, str] | None = None, last_id: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        self._client = httpx.Client(base_url=live.pipeline.url, timeout=httpx.Timeout(10.0))
        self._context = self._client.stream("GET", "/activities/stream", params=params, headers=headers)
        self.response = self._context.__enter__()
        self._lines = self.response.iter_lines()
        self.comments: list[str] = []

    def next(self, timeout: float = 20.0) -> Message:
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        for line in self._lines:
            assert time.monotonic() < deadline, "no event in time"
            if line.startswith(":"):
                self.comments.append(line)
            elif line == "":
                if "data" in fields:
                    return Message(fields.get("id"), fields.get("event", "message"), json.loads(fields["data"]))
                fields = {}
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def events(self, count: int) -> list[Message]:
        return [self.next() for _ in range(count)]

    def close(self) -> None:
        self._context.__exit__(None, None, None)
        self._client.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_frames(stream: Stream, body: bytearray, count: int) -> None:
    """Raw bytes of `stream` into `body` until `count` whole events came (or the stream ended)."""
    for chunk in stream.response.iter_bytes():
        body.extend(chunk)
        whole = b"\n" + body[: body.rfind(b"\n\n") + 2]  # frames end with a blank line; the last may be cut
        if whole.count(b"\ndata: ") >= count:
            return


def events(user: str, count: int, **extra: object) -> list[dict]:
    return [{"event_type": "page_view", "user_id": user, "event_id": f"{user}-{i}", **extra} for i in range(count)]


def test_events_are_pushed_filtered_and_only_the_keys_project(live: Live) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    with Stream(live, live.a.read, {"user_id": user}) as mine, Stream(live, live.b.read) as other:
        assert mine.response.status_code == 200
        assert mine.response.headers["content-type"].startswith("text/event-stream")
        live.post(live.a, [{"event_type": "noise", "user_id": "someone-else"}, *events(user, 2, url="https://x.test/")])
        live.post(live.b, events("b-user", 1))
        first, second = mine.events(2)
        assert [first.data["event_id"], second.data["event_id"]] == [f"{user}-0", f"{user}-1"]  # one partition: in order
        assert set(first.data) == {"event_id", "event_type", "timestamp", "received_at", "user_id", "anonymous_id",
                                   "session_id", "url", "referrer", "channel", "campaign_id", "tags", "properties"}
        assert first.data["url"] == "https://x.test/" and first.id and first.event == "message"
        assert other.next().data["user_id"] == "b-user"  # b's stream got b's event, none of a's


def test_the_same_keys_and_parameters_as_activities(live: Live) -> None:
    with live.pipeline.client() as client:
        assert client.get("/activities/stream").status_code == 401
        refused = client.get("/activities/stream", headers={"Authorization": f"Bearer {live.a.write}"})
        assert refused.status_code == 403 and refused.json()["code"] == "wrong_key_kind"
        read = {"Authorization": f"Bearer {live.a.read}"}
        backwards = client.get("/activities/stream", params={"from": "2026-01-02", "to": "2026-01-01"}, headers=read)
        assert backwards.status_code == 400 and backwards.json()["field"] == "from"
        long = client.get("/activities/stream", params={"user_id": "x" * 201}, headers=read)
        assert long.status_code == 400 and long.json()["field"] == "user_id"
        forged = client.get("/activities/stream", headers={**read, "Last-Event-ID": "not-an-id"})
        assert forged.status_code == 400 and forged.json()["field"] == "Last-Event-ID"


def test_heartbeats_while_nothing_happens(live: Live) -> None:
    with Stream(live, live.a.read, {"user_id": "nobody"}) as stream:
        deadline = time.monotonic() + 10
        for line in stream._lines:
            if line.startswith(": heartbeat"):
                break
            assert time.monotonic() < deadline, "no heartbeat"


def test_resume_with_last_event_id(live: Live) -> None:
    user = f"r-{uuid.uuid4().hex[:6]}"
    with Stream(live, live.a.read, {"user_id": user}) as stream:
        live.post(live.a, events(user, 1))
        seen = stream.next()
    live.post(live.a, events(user, 3)[1:])  # while disconnected
    with Stream(live, live.a.read, {"user_id": user}, last_id=seen.id) as resumed:
        assert [m.data["event_id"] for m in resumed.events(2)] == [f"{user}-1", f"{user}-2"]
        live.post(live.a, [{"event_type": "later", "user_id": user, "event_id": f"{user}-3"}])
        later = resumed.next()
        assert later.data["event_id"] == f"{user}-3" and later.event == "message"


def test_resume_from_before_the_replay_buffer_announces_a_gap(live: Live) -> None:
    user = f"g-{uuid.uuid4().hex[:6]}"
    with Stream(live, live.a.read, {"user_id": user}) as stream:
        live.post(live.a, events(user, 1))
        seen = stream.next()
    live.post(live.a, [{**event, "event_id": f"{user}-x{i}"} for i, event in enumerate(events(user, REPLAY + 5))])
    with Stream(live, live.a.read, {"user_id": user}, last_id=seen.id) as resumed:
        gap = resumed.next()
        assert gap.event == "gap" and "missed" in gap.data["message"]


def test_a_slow_client_is_dropped_and_slows_nobody(live: Live) -> None:
    user = f"s-{uuid.uuid4().hex[:6]}"
    dropped_before = LIVE_DROPPED._value.get()
    host, port = live.pipeline.url.removeprefix("http://").split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a tiny window
    slow.connect((host, int(port)))
    slow.sendall(f"GET /activities/stream?user_id={user} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live.a.read}"
                 "\r\nAccept: text/event-stream\r\n\r\n".encode())
    assert slow.recv(15).startswith(b"HTTP/1.1 200")  # then it reads nothing more
    # Loopback lets the server's kernel take ~2 MB the client never reads, and asyncio 64 KiB more,
    # before a write waits: 3,000 events of ~2 KiB stall the stream, then overflow its buffer.
    count = 3000
    with Stream(live, live.a.read, {"user_id": user}) as fast:
        # The reading client takes raw bytes on a thread of its own (parsing them as they come could
        # fall 1,000 events behind on a busy machine, and be dropped too: the bound is the same).
        body = bytearray()
        reader = threading.Thread(target=read_frames, args=(fast, body, count), daemon=True)
        reader.start()
        started = time.monotonic()
        live.post(live.a, [{**event, "properties": {"pad": "x" * 2000}} for event in events(user, count)])
        reader.join(60)
        seconds = time.monotonic() - started
    frames = [json.loads(line[6:]) for line in body.decode().split("\n") if line.startswith("data: ")]
    assert [frame["event_id"] for frame in frames] == [f"{user}-{i}" for i in range(count)]  # all, in order
    deadline = time.monotonic() + 30
    while LIVE_DROPPED._value.get() == dropped_before:  # its writes stall, its buffer overflows
        assert time.monotonic() < deadline, "the stalled client was never dropped"
        time.sleep(0.05)
    assert LIVE_DROPPED._value.get() == dropped_before + 1
    slow.settimeout(20)
    tail = b""
    while chunk := slow.recv(65536):  # the server ends the slow stream: EOF, not a hang
        tail += chunk
    slow.close()
    # It got what the kernel held for it, then its stream ended: with `event: dropped` when the server
    # could still write it, else cut (its writes stalled longer than a heartbeat interval).
    assert tail.endswith(b"0\r\n\r\n") or b"event: dropped" not in tail
    print(f"{count} events to a reading client in {seconds:.2f} s while a stalled one was dropped")


def test_streams_per_key_are_limited_and_reads_are_not_held(live: Live) -> None:
    streams = [Stream(live, live.b.read) for _ in range(STREAMS)]
    try:
        with live.pipeline.client(headers={"Authorization": f"Bearer {live.b.read}"}) as client:
            refused = client.get("/activities/stream")
            assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
            assert refused.json()["code"] == "rate_limited" and "STREAMTRACK_LIVE_STREAMS_PER_KEY" in refused.json()["message"]
            assert client.get("/activities").status_code == 200  # STREAMTRACK_QUERY_CONCURRENCY_PER_KEY=1, streams open
        streams.pop().close()
        with Stream(live, live.b.read) as again:
            assert again.response.status_code == 200
    finally:
        for stream in streams:
            stream.close()
