"""The live feed behind `GET /activities/stream`: the events topic, tailed by each API replica.

Why Kafka and not a tail of what the worker stores: an event is pushed as soon as the broker has
it (a fetch away from its 202), not after the worker's batch reached ClickHouse and a poll found
it, and the feed puts no query load on ClickHouse however many clients watch. What it shows is
what the API accepted: a client's retry of the same event_id is pushed once (recent ids are
remembered); the worker's later verdicts (bot filter, dead letters, erasure) are not waited for.

How: one consumer per replica, started on the first stream, *assigned* every partition at its
end (no consumer group: each replica must see every event, and nothing is committed or left
behind in the broker). A thread polls it and hands each batch to the subscribers' event loops.
Each subscriber has a bounded buffer: one that falls behind is dropped, and neither the thread
nor ingestion ever waits for a client.
Resuming: an event's SSE id is the feed's position just after it (the next offset of every
partition), the same on every replica, so `Last-Event-ID` resumes on any of them from the
replay buffer (the last STREAMTRACK_LIVE_REPLAY_EVENTS events); further back is a gap, which the
stream announces.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
import uuid
from collections.abc import Callable

import msgspec
import structlog
from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable, InvalidParameter
from streamtrack.events import Event, decode_event
from streamtrack.kafka.admin import client_config
from streamtrack.telemetry import metrics

log = structlog.get_logger(__name__)

RECENT_IDS = 100_000
POLL_SECONDS = 0.1


@dataclasses.dataclass(frozen=True)
class Item:
    partition: int
    offset: int
    event: Event
    position: str
    """The SSE id: every partition's next offset once this event was handed out."""


Position = list[int]


def encode_position(position: Position) -> str:
    return ".".join(map(str, position))


def decode_position(text: str, partitions: int) -> Position:
    parts = text.strip().split(".")
    if len(parts) != partitions or not all(part.isdigit() for part in parts):
        raise InvalidParameter(
            "is not an id this stream sent (the topic's partitions may have changed): reconnect without it",
            field="Last-Event-ID",
        )
    return [int(part) for part in parts]


class Subscriber:
    """One stream's buffer, on its event loop; filled from the feed's thread, drained by the stream."""

    def __init__(self, accept: Callable[[Event], bool], limit: int, after: Position) -> None:
        self.loop = asyncio.get_running_loop()
        self.accept = accept
        self.limit = limit
        self.after = list(after)
        self.items: collections.deque[Item] = collections.deque()
        self.wake = asyncio.Event()
        self.dropped = False
        """Fell behind its buffer: the stream says so and ends."""
        self.closed = False
        """The feed stopped (the server is shutting down): the stream ends."""
        self.gap = False
        """Resumed from further back than the replay buffer: some events were missed."""

    def wanted(self, item: Item) -> bool:
        """Not seen yet (resumed streams skip what they had) and matching the stream's filters."""
        return item.offset >= self.after[item.partition] and self.accept(item.event)

    def offer(self, items: list[Item]) -> None:
        """On the subscriber's loop. Over its buffer: dropped, and nothing more is kept for it."""
        if self.dropped:
            return
        if len(self.items) + len(items) > self.limit:
            self.drop()
        else:
            self.items.extend(items)
        self.wake.set()

    def drop(self) -> None:
        """Too slow: nothing more is kept for it (counted once)."""
        if not self.dropped:
            self.dropped = True
            metrics.LIVE_DROPPED.inc()
        self.items.clear()


class StreamSlots:
    """Open streams per key (STREAMTRACK_LIVE_STREAMS_PER_KEY); apps on several loops may share one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        with self._lock:
            if self._open.get(key, 0) >= self.limit:
                return False
            self._open[key] = self._open.get(key, 0) + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            left = self._open.pop(key, 1) - 1
            if left > 0:
                self._open[key] = left


class LiveFeed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        self._replay: collections.deque[Item] = collections.deque(maxlen=settings.live_replay_events)
        self._recent: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._position: Position = []
        self._low: Position = []
        """Per partition, the lowest offset the replay buffer still covers."""
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._started = threading.Event()
        self._failure: str | None = None

    @property
    def partitions(self) -> int:
        return len(self._position)

    def start(self, timeout: float = 10.0) -> None:
        """Assign every partition at its end; idempotent. Raises BrokerUnavailable if Kafka does not answer."""
        with self._lock:
            if self._running:
                return
            consumer = Consumer(client_config(self.settings, **{
                # Never joins: assign() only. The id only labels the client in the broker's logs.
                "group.id": f"streamtrack-live-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "client.id": "streamtrack-live",
                "fetch.wait.max.ms": 50,  # pushed soon after the broker has it: the feed is about delay
            }))
            try:
                topic = consumer.list_topics(self.settings.topic, timeout=timeout).topics[self.settings.topic]
                if topic.error is not None:
                    raise KafkaException(topic.error)
                partitions = sorted(topic.partitions)
                ends = [consumer.get_watermark_offsets(TopicPartition(self.settings.topic, p), timeout=timeout)[1]
                        for p in partitions]
            except KafkaException as exc:
                consumer.close()
                raise BrokerUnavailable(f"the live feed cannot read {self.settings.topic!r}: {exc}", retry_after=5) from exc
            consumer.assign([TopicPartition(self.settings.topic, p, end if end >= 0 else OFFSET_END)
                             for p, end in zip(partitions, ends, strict=True)])
            self._position = list(ends)
            self._low = list(ends)
            self._consumer = consumer
            self._running = True
            self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
            self._thread.start()
        log.info("live feed started", topic=self.settings.topic, partitions=len(partitions))

    def subscribe(self, accept: Callable[[Event], bool], after: Position | None) -> Subscriber:
        """A buffer that gets every later event `accept`s; with `after`, first the replayed ones after it."""
        with self._lock:
            start = list(self._position) if after is None else after
            subscriber = Subscriber(accept, self.settings.live_buffer_events, start)
            if after is not None:
                subscriber.gap = any(a < low for a, low in zip(after, self._low, strict=True))
                backlog = [item for item in self._replay if subscriber.wanted(item)]
                if backlog:
                    subscriber.offer(backlog)
            self._subscribers.add(subscriber)
            metrics.LIVE_STREAMS.set(len(self._subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)
            metrics.LIVE_STREAMS.set(len(self._subscribers))

    def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while self._running:
            try:
                # poll() returns with the first record; consume(timeout=0) then takes what else is queued.
                # (consume(500, timeout) alone waits for 500 records or the timeout: a delay on every event.)
                first = consumer.poll(POLL_SECONDS)
                messages = [] if first is None else [first, *consumer.consume(num_messages=499, timeout=0)]
            except KafkaException as exc:
                log.warning("live feed poll failed", error=str(exc))
                continue
            items = [item for message in messages if (item := self._item(message)) is not None]
            if items:
                self._hand_out(items)
        consumer.close()

    def _item(self, message) -> Item | None:  # type: ignore[no-untyped-def]
        if message.error() is not None:
            return None
        partition, offset = message.partition(), message.offset()
        self._position[partition] = offset + 1
        try:
            event = decode_event(message.value())
        except (msgspec.DecodeError, TypeError):
            return None  # the worker dead-letters it; nothing to show
        key = (event.project_id, event.event_id)
        if key in self._recent:
            return None  # a client's retry of an event already pushed
        self._recent[key] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        return Item(partition, offset, event, encode_position(self._position))

    def _hand_out(self, items: list[Item]) -> None:
        with self._lock:
            for item in items:
                if len(self._replay) == self._replay.maxlen:  # the oldest (or, with no buffer, this one) is lost
                    evicted = self._replay[0] if self._replay else item
                    self._low[evicted.partition] = evicted.offset + 1
                self._replay.append(item)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            wanted = [item for item in items if subscriber.wanted(item)]
            if wanted:
                try:
                    subscriber.loop.call_soon_threadsafe(subscriber.offer, wanted)
                except RuntimeError:  # its loop is closed: the stream is gone
                    self.unsubscribe(subscriber)

    def close(self) -> None:
        """Stop the thread (its consumer closes there); every stream ends at its next wake-up."""
        with self._lock:
            running, self._running = self._running, False
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.closed = True
            try:
                subscriber.loop.call_soon_threadsafe(subscriber.wake.set)
            except RuntimeError:
                pass
        if running and self._thread is not None:
            self._thread.join(timeout=5)
