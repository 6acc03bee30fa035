"""The ingest core without HTTP: normalise, produce, wait for the broker, say what happened to each event.

`POST /track` and `POST /batch` (streamtrack.api.ingest) are thin around it, and any other way in
(gRPC) can call it with its own request context: nothing here reads a request. An event is
accepted only once the broker acknowledged it; a batch's events are judged one by one, so a bad
one is `rejected` at its index and one the broker did not take is `failed` (retry it, same
event_id) while the others go on. The accepted/rejected counters are kept here, by project.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec

from streamtrack.api.services import Services
from streamtrack.errors import ClientError
from streamtrack.events import Event
from streamtrack.kafka import EventProducer
from streamtrack.normalize import RequestContext, normalize_raw
from streamtrack.telemetry.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED


class ItemResult(msgspec.Struct, omit_defaults=True):
    index: int
    status: str
    """accepted | rejected (fix the event) | failed (retry later, same event_id)"""
    event_id: str | None = None
    code: str | None = None
    message: str | None = None
    field: str | None = None


class BatchResult(msgspec.Struct):
    accepted: int
    rejected: int
    failed: int
    results: list[ItemResult]


async def accept_one(services: Services, raw: bytes, context: RequestContext) -> Event:
    """Normalise one event and produce it; returns it once acknowledged, else raises (ClientError, RetryableError)."""
    event = normalize_raw(raw, context, services.limits)
    await services.producer.send(event)
    EVENTS_ACCEPTED.labels(context.project_id).inc()
    return event


async def accept_raw_batch(
    services: Services, items: Sequence[bytes | msgspec.Raw], context: RequestContext
) -> tuple[BatchResult, int]:
    """Normalise each item and produce the valid ones: one result per item, in order, and `accept_many`'s Retry-After."""
    judged: list[Event | ClientError] = []
    for raw in items:
        try:
            judged.append(normalize_raw(raw, context, services.limits))
        except ClientError as exc:
            judged.append(exc)
    return await accept_many(services.producer, judged, context.project_id)


async def accept_many(
    producer: EventProducer, judged: Sequence[Event | ClientError], project: str
) -> tuple[BatchResult, int]:
    """Produce the events among `judged` (the others are refusals, reported at their index) and wait for the broker.

    Also returns the seconds after which the failed ones may be retried (0 when none failed).
    """
    results: list[ItemResult] = [None] * len(judged)  # type: ignore[list-item]  # every slot is filled below
    events: list[Event] = []
    places: list[int] = []
    refused: Counter[str] = Counter()
    for index, item in enumerate(judged):
        if isinstance(item, Event):
            events.append(item)
            places.append(index)
        else:
            results[index] = ItemResult(index, "rejected", code=item.code, message=item.message, field=item.field)
            refused[item.code] += 1
    rejected = len(judged) - len(events)
    outcomes = await producer.send_many(events) if events else []
    retry_after = 0
    for index, event, outcome in zip(places, events, outcomes, strict=True):
        if outcome is None:
            results[index] = ItemResult(index, "accepted", event_id=event.event_id)
        else:
            retry_after = max(retry_after, outcome.retry_after)
            results[index] = ItemResult(index, "failed", event_id=event.event_id, code=outcome.code, message=outcome.message)
            refused[outcome.code] += 1
    failed = len(events) - sum(outcome is None for outcome in outcomes)
    accepted = len(events) - failed
    EVENTS_ACCEPTED.labels(project).inc(accepted)
    for code, count in refused.items():
        EVENTS_REJECTED.labels(code or "unknown", project).inc(count)
    return BatchResult(accepted=accepted, rejected=rejected, failed=failed, results=results), retry_after
