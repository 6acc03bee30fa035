"""The event producer: asyncio-friendly, acknowledged, bounded.

A 202 means the broker has the event, so every send waits for its delivery report.
librdkafka's callbacks run on a poll thread of ours; each report resolves an asyncio
future through `call_soon_threadsafe`. The local queue is bounded
(`STREAMTRACK_PRODUCER_QUEUE_MAX`): when it is full, or the broker does not acknowledge
within `message.timeout.ms`, the caller gets BrokerUnavailable (-> 503 + Retry-After)
instead of the process growing without bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable
from streamtrack.events import Event, encode_event
from streamtrack.kafka.admin import client_config

log = structlog.get_logger(__name__)

HEADERS = [("content-type", b"application/json"), ("streamtrack-schema", b"1")]


class EventProducer:
    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic
        self.retry_after = 1 + settings.produce_timeout_ms // 2000
        self._timeout = settings.produce_timeout_ms / 1000
        self._producer = Producer(
            client_config(
                settings,
                **{
                    "enable.idempotence": True,  # implies acks=all, bounded in-flight, no duplicates on retry
                    "acks": "all",
                    "compression.type": "lz4",
                    "linger.ms": settings.producer_linger_ms,
                    "message.timeout.ms": settings.produce_timeout_ms,
                    "queue.buffering.max.messages": settings.producer_queue_max,
                    "client.id": "streamtrack-api",
                },
            )
        )
        self.delivered: dict[int, int] = {}
        """partition -> highest offset acknowledged; lets the dev mode drain exactly."""
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    async def send(self, event: Event) -> None:
        """Produce one event and wait for the broker's acknowledgement."""
        (result,) = await self.send_many([event])
        if result is not None:
            raise result

    async def send_many(self, events: Sequence[Event]) -> list[BrokerUnavailable | None]:
        """Produce events and wait for all acknowledgements; one result per event (None = stored)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None] | BrokerUnavailable] = []
        for event in events:
            future: asyncio.Future[None] = loop.create_future()
            try:
                self._producer.produce(
                    self.topic,
                    value=encode_event(event),
                    key=event.partition_key.encode(),
                    headers=HEADERS,
                    on_delivery=self._reporter(loop, future),
                )
            except BufferError:
                futures.append(
                    BrokerUnavailable("too many events are waiting for the broker", retry_after=self.retry_after)
                )
                continue
            except KafkaException as exc:
                futures.append(BrokerUnavailable(f"the broker refused the event: {exc}", retry_after=self.retry_after))
                continue
            futures.append(future)
        results: list[BrokerUnavailable | None] = []
        for future in futures:
            if isinstance(future, BrokerUnavailable):
                results.append(future)
                continue
            try:
                # librdkafka reports every message by message.timeout.ms; the margin covers the poll interval.
                await asyncio.wait_for(asyncio.shield(future), self._timeout + 2)
                results.append(None)
            except BrokerUnavailable as exc:
                results.append(exc)
            except TimeoutError:
                results.append(BrokerUnavailable("the broker did not acknowledge in time", retry_after=self.retry_after))
        return results

    def _reporter(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]):
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                partition, offset = msg.partition(), msg.offset()
                if offset > self.delivered.get(partition, -1):
                    self.delivered[partition] = offset
            try:
                loop.call_soon_threadsafe(self._settle, future, err)
            except RuntimeError:  # the loop is closed: nobody waits for this report any more
                pass

        return report

    def _settle(self, future: asyncio.Future[None], err: KafkaError | None) -> None:
        if future.done():
            return
        if err is None:
            future.set_result(None)
        else:
            future.set_exception(
                BrokerUnavailable(f"the broker did not take the event: {err.str()}", retry_after=self.retry_after)
            )

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    def pending(self) -> int:
        """Events handed to librdkafka and not yet acknowledged."""
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (bounded by `timeout`), then stop the poll thread."""
        left = self._producer.flush(timeout)
        self._running = False
        self._poller.join(timeout=1)
        if left:
            log.warning("producer closed with undelivered events", undelivered=left)
