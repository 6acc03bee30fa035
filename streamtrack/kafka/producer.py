"""The event producer: asyncio-friendly, acknowledged, bounded.

A 202 means the broker has the event, so every send waits for its delivery report.
librdkafka's callbacks run on a poll thread of ours; each report resolves an asyncio
future through `call_soon_threadsafe`. The local queue is bounded
(`STREAMTRACK_PRODUCER_QUEUE_MAX`): when it is full, or the broker does not acknowledge
within `message.timeout.ms`, the caller gets BrokerUnavailable (-> 503 + Retry-After)
instead of the process growing without bound.

A fatal producer error (e.g. the idempotent producer's state lost because the broker lost
its data, as the local in-memory broker does on a restart), or a delivery error that says
the producer was fenced or its sequence broken, makes librdkafka's producer unusable for
good; the poll thread then replaces it, so the API recovers by itself.
Each send runs in a producer span whose `traceparent` goes into every record's headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Sequence

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from opentelemetry.trace import SpanKind, StatusCode

from streamtrack.config import Settings
from streamtrack.errors import BrokerUnavailable
from streamtrack.events import Event, encode_event
from streamtrack.kafka.admin import client_config
from streamtrack.telemetry import metrics
from streamtrack.telemetry.tracing import inject_headers, tracer, tracing_enabled

log = structlog.get_logger(__name__)

HEADERS = [("content-type", b"application/json"), ("streamtrack-schema", b"1")]


_NO_REPORT = "the broker did not acknowledge in time"

# Delivery errors that leave this producer unable to send again: its idempotence state (id,
# epoch, sequence) no longer matches the broker's. librdkafka reports some as fatal, but a
# fenced epoch bump after timed-out messages comes per message (seen with the local broker
# after it hung for 3 s: every later event failed with PRODUCER_FENCED), so the producer is
# replaced on these too instead of failing every request from then on.
_BROKEN_PRODUCER = frozenset({
    KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.UNKNOWN_PRODUCER_ID, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
})


def producer_config(settings: Settings, **extra: object) -> dict[str, object]:
    """The API producer's librdkafka properties (the benchmark's raw produce uses them too)."""
    return client_config(
        settings,
        **{
            "enable.idempotence": True,  # implies acks=all, bounded in-flight, no duplicates on retry
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": settings.producer_linger_ms,
            "message.timeout.ms": settings.produce_timeout_ms,
            "queue.buffering.max.messages": settings.producer_queue_max,
            "client.id": "streamtrack-api",
            **extra,
        },
    )


class _Acks:
    """The delivery reports of one send_many call: one callback (`report`) for all its records.

    librdkafka calls `report` on the poll thread, once per record. Successes are only counted
    (and kept, to tell which records a timed-out wait had reports for); a failure keeps its
    record, mapped back to its index by value only when there is one. `next(self._reports)`
    is atomic, so the one report that completes the call, whichever thread gives it, is known
    without a lock.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, values: list[bytes], producer: EventProducer) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.values = values
        self._producer = producer
        self._delivered = producer.delivered
        self._acked: list[Message] = []
        self._failed: list[tuple[bytes, str]] = []
        self._refused: dict[int, str] = {}
        self._reports = itertools.count(1)
        self._count = len(values)
        if not values:
            self.future.set_result(None)

    def report(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            partition, offset = msg.partition(), msg.offset()
            if offset > self._delivered.get(partition, -1):
                self._delivered[partition] = offset
            self._acked.append(msg)
        else:
            if err.code() in _BROKEN_PRODUCER:
                self._producer._fatal.set()
            self._failed.append((msg.value() or b"", f"the broker did not take the event: {err.str()}"))
        if next(self._reports) == self._count:
            self._producer._settled.append(self)  # the poll thread wakes the loop once per poll for all of them

    def refuse(self, index: int, error: str) -> None:
        """A record produce() refused (on the event loop, so the last one settles the future here)."""
        self._refused[index] = error
        if next(self._reports) == self._count:
            self.settle()

    def settle(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def errors(self) -> list[str | None]:
        """Per record: None if acknowledged, else why not (records without a report: 'not in time')."""
        if not self._failed and not self._refused and len(self._acked) == self._count:
            return [None] * self._count
        errors: list[str | None] = [_NO_REPORT] * self._count
        at: dict[bytes, list[int]] = {}
        for index, value in enumerate(self.values):
            if index in self._refused:
                errors[index] = self._refused[index]
            else:
                at.setdefault(value, []).append(index)
        for value, error in [*((m.value() or b"", None) for m in self._acked[:]), *self._failed[:]]:
            if at.get(value):
                errors[at[value].pop()] = error  # byte-equal records are interchangeable
        return errors


def _settle_all(settled: list[_Acks]) -> None:
    for acks in settled:
        acks.settle()


class EventProducer:
    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic
        self.retry_after = 1 + settings.produce_timeout_ms // 2000
        self._timeout = settings.produce_timeout_ms / 1000
        self._config = producer_config(settings, error_cb=self._on_error)
        self._fatal = threading.Event()
        self._settled: list[_Acks] = []
        """Sends whose last report came in, to be woken by the poll thread (list.append is atomic)."""
        self._producer = Producer(self._config)
        metrics.PRODUCER_QUEUE.set_function(self.pending)
        self.delivered: dict[int, int] = {}
        """partition -> highest offset acknowledged; lets the dev mode drain exactly."""
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()
        self._warm_up()

    def _warm_up(self, timeout: float = 5.0) -> None:
        """Connect and learn the topic's leaders now, not while the first requests wait."""
        try:
            self._producer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            log.warning("broker not reachable yet; the producer keeps trying", error=str(exc))

    async def send(self, event: Event) -> None:
        """Produce one event and wait for the broker's acknowledgement."""
        (result,) = await self.send_many([event])
        if result is not None:
            raise result

    async def send_many(self, events: Sequence[Event]) -> list[BrokerUnavailable | None]:
        """Produce events and wait for all acknowledgements; one result per event (None = stored).

        One future per call, not per event, and one delivery callback object for all its
        records; the poll thread wakes the event loop once per poll for every call completed
        in it, so neither a 1,000-event batch nor 32 concurrent /track requests cost a
        wake-up per event.
        """
        values = [encode_event(event) for event in events]
        acks = _Acks(asyncio.get_running_loop(), values, self)
        started = time.perf_counter()
        with tracer().start_as_current_span(
            f"publish {self.topic}", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": self.topic,
                        "messaging.operation.type": "publish", "messaging.batch.message_count": len(events)},
        ) if tracing_enabled() else contextlib.nullcontext() as span:
            headers = inject_headers(HEADERS)
            produce, topic, report = self._producer.produce, self.topic, acks.report
            for index, event in enumerate(events):
                try:
                    produce(topic, values[index], event.partition_key.encode(), headers=headers, on_delivery=report)
                except BufferError:
                    acks.refuse(index, "too many events are waiting for the broker")
                except KafkaException as exc:
                    acks.refuse(index, f"the broker refused the event: {exc}")
            if not acks.future.done():
                # librdkafka reports every message by message.timeout.ms; the margin covers the poll interval.
                timer = acks.loop.call_later(self._timeout + 2, acks.settle)
                try:
                    await acks.future
                finally:
                    timer.cancel()
            errors = acks.errors()
            if span is not None and (failed := sum(error is not None for error in errors)):
                span.set_status(StatusCode.ERROR, f"{failed} of {len(events)} events not acknowledged")
        metrics.PRODUCE_LATENCY.observe(time.perf_counter() - started)
        return [None if error is None else BrokerUnavailable(error, retry_after=self.retry_after) for error in errors]

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's client-level errors (its thread); a fatal one retires the producer."""
        if error.fatal():
            log.error("producer failed for good; replacing it", error=error.str())
            self._fatal.set()
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("no broker reachable; events get 503 until one is back", error=error.str())

    def _poll(self) -> None:
        while self._running:
            if self._fatal.is_set():
                self._replace_producer()
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # a fatal error is raised here too, not only reported
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and error.fatal():
                    self._fatal.set()
                else:
                    log.warning("producer poll failed", error=str(exc))
            self._wake_settled()

    def _wake_settled(self) -> None:
        """One wake-up per event loop for every send completed in the last poll."""
        if not self._settled:
            return
        settled, self._settled = self._settled, []
        for loop in {acks.loop for acks in settled}:
            try:
                loop.call_soon_threadsafe(_settle_all, [acks for acks in settled if acks.loop is loop])
            except RuntimeError:  # the loop is closed: nobody waits for these reports any more
                pass

    def _replace_producer(self) -> None:
        """A fresh producer for new sends; the old one's unacknowledged events fail (-> 503)."""
        old, self._producer = self._producer, Producer(self._config)
        self._fatal.clear()
        try:
            old.purge()  # queued and in-flight messages are reported as failed to their waiting requests
            old.poll(0)
        except KafkaException as exc:
            log.warning("the failed producer did not report its last events; their requests time out", error=str(exc))
        log.info("producer replaced")

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
