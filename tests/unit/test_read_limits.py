"""Per-key read concurrency at the gate, and the ClickHouse bounds of API reads, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

from streamtrack.api.auth import AuthGate
from streamtrack.api.read_limits import BoundedBackend, QuerySlots, query_bounds
from streamtrack.auth.keys import KeyKind, Principal, hash_key
from streamtrack.config import load_settings


def test_slots_bound_each_key_on_its_own() -> None:
    slots = QuerySlots(2)
    assert [slots.acquire("a"), slots.acquire("a"), slots.acquire("a"), slots.acquire("b")] == [True, True, False, True]
    slots.release("a")
    assert slots.acquire("a") is True
    for key in ("a", "a", "b"):
        slots.release(key)
    assert len(slots) == 0  # nothing kept for idle keys
    assert all(QuerySlots(0).acquire("a") for _ in range(100))  # 0: no limit


def test_query_bounds_follow_the_settings_and_zero_means_none() -> None:
    settings = load_settings(env={"STREAMTRACK_QUERY_MAX_SECONDS": "7", "STREAMTRACK_QUERY_MAX_ROWS": "0"})
    assert query_bounds(settings) == {"max_execution_time": 7, "max_memory_usage": 1024**3}

    class Recorder:
        name = "recorder"
        calls: list[Any] = []

        def query(self, sql: str, params: Any = None, settings: Any = None) -> list[tuple[Any, ...]]:
            self.calls.append(settings)
            return []

    recorder = Recorder()
    BoundedBackend(recorder, {"max_execution_time": 7}).query("SELECT 1", None, {"max_rows_to_read": 5})  # type: ignore[arg-type]
    assert recorder.calls == [{"max_execution_time": 7, "max_rows_to_read": 5}]


def test_one_keys_flood_of_reads_is_refused_while_other_keys_are_served() -> None:
    settings = load_settings(env={
        "STREAMTRACK_AUTH": "on", "STREAMTRACK_QUERY_CONCURRENCY_PER_KEY": "2",
        "STREAMTRACK_RATE_LIMIT_KEY_PER_S": "0", "STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S": "0",
    })
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"].startswith("/analytics/"):
            await release.wait()  # a slow query, held until the test lets it finish
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    gate = AuthGate(app, settings, store=None)  # type: ignore[arg-type]  # keys come from the primed cache
    keys = {"str_a-key": "a", "str_b-key": "b"}
    for secret, project in keys.items():
        gate.resolver._cache[hash_key(secret)] = Principal(project, KeyKind.READ, secret[:12])

    async def call(path: str, key: str) -> tuple[int, dict[bytes, bytes]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": [(b"x-streamtrack-key", key.encode())],
                 "query_string": b"", "client": ("127.0.0.1", 1)}
        await gate(scope, receive, send)
        return sent[0]["status"], dict(sent[0]["headers"])

    async def scenario() -> None:
        running = [asyncio.create_task(call("/analytics/funnel", "str_a-key")) for _ in range(2)]
        await asyncio.sleep(0)  # both in the gate, holding A's two slots
        refused = await call("/analytics/overview", "str_a-key")
        assert refused[0] == 429 and refused[1][b"retry-after"] == b"1"
        assert (await call("/activities", "str_a-key"))[0] == 429
        assert (await call("/pipeline/status", "str_a-key"))[0] == 200  # not a limited read
        other = asyncio.create_task(call("/analytics/overview", "str_b-key"))
        await asyncio.sleep(0)
        assert not other.done()  # B got a slot of its own: it runs (held like A's) instead of being refused
        release.set()
        assert [status for status, _ in await asyncio.gather(*running)] == [200, 200]
        assert (await other)[0] == 200
        assert (await call("/analytics/overview", "str_a-key"))[0] == 200  # slots freed

    asyncio.run(scenario())
