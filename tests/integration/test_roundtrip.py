"""Events posted over HTTP come back from /activities, every one exactly once."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.fixtures.pipeline import Pipeline


def read_all(client: httpx.Client, **params: str) -> list[dict]:
    """Every page of /activities, following next_cursor."""
    rows: list[dict] = []
    cursor = None
    while True:
        query = {**params, "limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = client.get("/activities", params=query).json()
        rows.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def test_tracked_event_is_queryable(pipeline: Pipeline) -> None:
    """The latency (target: under 2 s) is measured by bench/ingest.py, not asserted here."""
    user = f"u-{uuid.uuid4().hex[:6]}"
    with pipeline.client() as client:
        response = client.post(
            "/track",
            json={"event_type": "page_view", "user_id": user, "url": "https://shop.test/", "plan": "pro",
                  "timestamp": "2026-01-31T12:00:00Z", "tags": ["a"]},
            headers={"User-Agent": "roundtrip-test"},
        )
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]
        rows: list[dict] = []

        def visible() -> bool:
            rows[:] = client.get("/activities", params={"user_id": user}).json()["data"]
            return bool(rows)

        pipeline.wait_for(visible, timeout=30, what="the event in /activities")
    assert len(rows) == 1
    row = rows[0]
    assert row["event_id"] == event_id
    assert (row["event_type"], row["user_id"], row["url"]) == ("page_view", user, "https://shop.test/")
    assert row["timestamp"] == "2026-01-31T12:00:00.000Z"
    assert row["properties"] == {"plan": "pro"} and row["tags"] == ["a"]


async def _post_singles(url: str, events: list[dict], concurrency: int = 32) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def post(event: dict) -> httpx.Response:
            async with gate:
                return await client.post("/track", json=event)

        return await asyncio.gather(*(post(e) for e in events))


def test_ten_thousand_events_single_and_batch_each_stored_once(pipeline: Pipeline) -> None:
    run = uuid.uuid4().hex[:8]
    singles = [
        {"event_type": "view", "user_id": f"{run}-u{i % 97}", "session_id": f"{run}-s{i % 13}", "n": i}
        for i in range(3000)
    ]
    batched = [
        {"event": "click", "anonymousId": f"{run}-a{i % 89}", "messageId": f"{run}-m{i}", "n": i}
        for i in range(7000)
    ]
    responses = asyncio.run(_post_singles(pipeline.url, singles))
    assert [r.status_code for r in responses] == [202] * len(singles)
    sent = {r.json()["event_id"] for r in responses}
    with pipeline.client() as client:
        for start in range(0, len(batched), 1000):
            response = client.post("/batch", json={"events": batched[start : start + 1000]})
            assert response.status_code == 202, response.text
            body = response.json()
            assert (body["accepted"], body["rejected"], body["failed"]) == (1000, 0, 0)
            sent.update(r["event_id"] for r in body["results"])
        # The same batch again, as a client retry would: same ids, so nothing new.
        retry = client.post("/batch", json=batched[:500])
        assert retry.json()["accepted"] == 500
        assert len(sent) == 10_000

        def all_stored() -> bool:
            return {e.event_id for e in pipeline.store.activities(limit=20_000)} >= sent

        pipeline.wait_for(all_stored, timeout=60, what="10,000 events in ClickHouse")
        rows = read_all(client)
    ids = [row["event_id"] for row in rows if row["event_id"] in sent]
    assert len(ids) == 10_000, "some event is missing or doubled"
    assert set(ids) == sent
    timestamps = [row["timestamp"] for row in rows]
    assert timestamps == sorted(timestamps, reverse=True), "not newest first"


def test_client_retry_without_timestamp_is_stored_once(pipeline: Pipeline) -> None:
    """The same event_id sent twice, each time stamped by the server: one row, not two."""
    event_id = f"retry-{uuid.uuid4().hex[:8]}"
    user = f"u-{event_id}"
    with pipeline.client() as client:
        def send() -> None:
            response = client.post("/track", json={"event_type": "buy", "user_id": user, "event_id": event_id})
            assert response.status_code == 202

        send()
        pipeline.wait_for(lambda: bool(client.get("/activities", params={"user_id": user}).json()["data"]))
        send()  # checked against ClickHouse by the worker
        send()
        marker = client.post("/track", json={"event_type": "after", "user_id": user}).json()["event_id"]
        pipeline.wait_for(lambda: len(client.get("/activities", params={"user_id": user}).json()["data"]) >= 2)
        rows = client.get("/activities", params={"user_id": user}).json()["data"]
    assert sorted(r["event_id"] for r in rows) == sorted([event_id, marker])
    stored = pipeline.store.backend.query(
        f"SELECT count() FROM `{pipeline.store.database}`.events WHERE event_id = {{id:String}}", {"id": event_id}
    )
    assert stored == [(1,)], "a retry was stored as a second row"
