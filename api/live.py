"""`GET /activities/stream`: the project's events pushed as Server-Sent Events while they arrive.

The filters, key and answer of `/activities` (each event is an `Activity`, as JSON in `data:`),
fed from Kafka by `streamtrack.api.live_feed` (why Kafka: see there). Per stream:
- `id:` of each event is the feed's position after it: a client that reconnects with
  `Last-Event-ID` (browsers' EventSource do it by themselves) gets what it missed from the
  replay buffer, on any replica; from too far back it first gets `event: gap`;
- a heartbeat comment every STREAMTRACK_LIVE_HEARTBEAT_SECONDS without events keeps proxies
  from closing an idle stream;
- a bounded buffer (STREAMTRACK_LIVE_BUFFER_EVENTS): a client that falls further behind gets
  `event: dropped` and the stream ends; one whose writes stall longer than a heartbeat interval
  is disconnected. Neither ever slows ingestion or other streams;
- at most STREAMTRACK_LIVE_STREAMS_PER_KEY streams per key (per client address with auth off)
  and replica: more are 429 with Retry-After.
The route is left out of the OpenAPI document (generated clients and the schema-driven attack
test would wait on a stream that never ends); docs/api/live-feed.md documents it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Annotated

import msgspec
from litestar import MediaType, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from streamtrack.api.activities import _text_param, _time_param, to_activity
from streamtrack.api.auth import KEY_ID_SCOPE_KEY, project_of
from streamtrack.api.live_feed import Item, LiveFeed, StreamSlots, Subscriber, decode_position
from streamtrack.api.services import Services
from streamtrack.errors import InvalidParameter
from streamtrack.events import Event

STREAM_PATH = "/activities/stream"
RETRY_MS = 2000
"""What EventSource waits before reconnecting (the `retry:` field)."""
_encode = msgspec.json.Encoder().encode


def _filter(project: str, user_id: str | None, event_type: str | None, session_id: str | None,
            start_ms: int | None, end_ms: int | None) -> Callable[[Event], bool]:
    def accept(event: Event) -> bool:
        return (
            event.project_id == project
            and (user_id is None or event.user_id == user_id)
            and (event_type is None or event.event_type == event_type)
            and (session_id is None or event.session_id == session_id)
            and (start_ms is None or event.timestamp >= start_ms)
            and (end_ms is None or event.timestamp < end_ms)
        )

    return accept


@get(STREAM_PATH, include_in_schema=False)
async def activities_stream(
    request: Request,
    services: NamedDependency[Services],
    user_id: Annotated[str | None, QueryParameter()] = None,
    event_type: Annotated[str | None, QueryParameter()] = None,
    session_id: Annotated[str | None, QueryParameter()] = None,
    from_: Annotated[str | None, QueryParameter(name="from")] = None,
    to: Annotated[str | None, QueryParameter()] = None,
) -> ASGIApp:
    """Events of the key's project as they arrive, filtered as /activities filters."""
    start_ms, end_ms = _time_param(from_, "from"), _time_param(to, "to")
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise InvalidParameter("'from' must be earlier than 'to'", field="from")
    accept = _filter(project_of(request), _text_param(user_id, "user_id"), _text_param(event_type, "event_type"),
                     _text_param(session_id, "session_id"), start_ms, end_ms)
    feed = services.live
    await asyncio.to_thread(feed.start)  # once per replica; BrokerUnavailable -> 503
    last_id = request.headers.get("last-event-id", "").strip()
    after = decode_position(last_id, feed.partitions) if last_id else None
    key = request.scope.get(KEY_ID_SCOPE_KEY) or (request.client.host if request.client else "")  # type: ignore[call-overload]
    slots: StreamSlots = services.live_slots
    if not slots.acquire(key):
        body = {
            "status": 429, "code": "rate_limited", "retry_after": 5,
            "message": f"this key has {slots.limit} live streams open already (STREAMTRACK_LIVE_STREAMS_PER_KEY)",
        }
        return ASGIResponse(body=_encode(body), status_code=429, media_type=MediaType.JSON, headers={"Retry-After": "5"})
    return LiveStream(feed, feed.subscribe(accept, after), slots, key, services.settings.live_heartbeat_seconds)


class LiveStream:
    """The response: writes the subscriber's events as SSE until the client leaves or is dropped."""

    def __init__(self, feed: LiveFeed, subscriber: Subscriber, slots: StreamSlots, key: str, heartbeat_s: float) -> None:
        self.feed, self.subscriber, self.slots, self.key, self.heartbeat_s = feed, subscriber, slots, key, heartbeat_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            self.subscriber.wake.set()

        listener = asyncio.create_task(listen())
        try:
            await self._stream(send, gone)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            self.feed.unsubscribe(self.subscriber)
            self.slots.release(self.key)

    async def _stream(self, send: Send, gone: asyncio.Event) -> None:
        subscriber = self.subscriber
        if not await self._write(send, {"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # nginx (ingress-nginx): pass each event on at once
            (b"connection", b"close"),  # when the stream ends, so does its connection (a dropped client sees EOF)
        ]}):
            return
        opening = f"retry: {RETRY_MS}\n\n"
        if subscriber.gap:
            opening += "event: gap\ndata: {\"message\": \"events were missed: reload /activities\"}\n\n"
        if not await self._chunk(send, opening.encode()):
            return
        idle_since = time.monotonic()
        while not gone.is_set():
            if subscriber.closed:
                break
            if subscriber.dropped:
                message = f"this client fell more than {subscriber.limit} events behind; reconnect with Last-Event-ID"
                await self._chunk(send, b"event: dropped\ndata: " + _encode({"message": message}) + b"\n\n")
                break
            if subscriber.items:
                chunk = b"".join(_frame(subscriber.items.popleft()) for _ in range(min(len(subscriber.items), 100)))
                if not await self._chunk(send, chunk):
                    return
                idle_since = time.monotonic()
                continue
            subscriber.wake.clear()
            wait = self.heartbeat_s - (time.monotonic() - idle_since)
            if wait <= 0:
                if not await self._chunk(send, f": heartbeat {int(time.time())}\n\n".encode()):
                    return
                idle_since = time.monotonic()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriber.wake.wait(), wait)
        await self._write(send, {"type": "http.response.body", "body": b"", "more_body": False})

    async def _chunk(self, send: Send, body: bytes) -> bool:
        return await self._write(send, {"type": "http.response.body", "body": body, "more_body": True})

    async def _write(self, send: Send, message: Message) -> bool:
        """False when the client did not take the write within a heartbeat interval: returning without
        completing the response then makes the server close the connection."""
        try:
            await asyncio.wait_for(send(message), self.heartbeat_s)
        except TimeoutError:
            self.subscriber.drop()
            return False
        return True


def _frame(item: Item) -> bytes:
    return b"id: " + item.position.encode() + b"\ndata: " + _encode(to_activity(item.event)) + b"\n\n"
