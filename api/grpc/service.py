"""`streamtrack.v1.EventService`: PublishEvent and PublishEvents, the gRPC twins of /track and /batch.

Each call: the key from the metadata (`auth`), each Event through the HTTP API's normalisation
(`convert`), then the API's producer, whose send returns only once the broker acknowledged (or
refused, or timed out). Outcomes are counted in the HTTP API's event counters.
"""

from __future__ import annotations

from collections import Counter

import grpc

from streamtrack.api.grpc import event_pb2, event_pb2_grpc
from streamtrack.api.grpc.auth import MetadataAuth
from streamtrack.api.grpc.convert import to_event
from streamtrack.api.grpc.status import abort
from streamtrack.api.services import Services
from streamtrack.errors import (
    BrokerUnavailable,
    ClientError,
    InvalidEvent,
    PayloadTooLarge,
    RetryableError,
    StreamTrackError,
)
from streamtrack.events import Event
from streamtrack.normalize import RequestContext
from streamtrack.telemetry.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from streamtrack.timestamps import now_ms

Result = event_pb2.EventResult
SHOWN_REJECTIONS = 5
"""How many rejected events an all-rejected batch's status message names."""


class EventService(event_pb2_grpc.EventServiceServicer):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.auth = MetadataAuth(services.settings, services.store)

    async def _context(self, context: grpc.aio.ServicerContext) -> RequestContext:
        metadata = dict(context.invocation_metadata() or ())
        user_agent = metadata.get("user-agent", "")
        return RequestContext(
            received_at=now_ms(), ip=self.auth.client_ip(context),
            user_agent=user_agent if isinstance(user_agent, str) else "",
            project_id=await self.auth.project(context),
        )

    async def PublishEvent(  # noqa: N802 (the RPC's name)
        self, request: event_pb2.PublishEventRequest, context: grpc.aio.ServicerContext
    ) -> event_pb2.PublishEventResponse:
        project = ""
        try:
            call = await self._context(context)
            project = call.project_id
            event = to_event(request.event, call, self.services.limits)
            await self.services.producer.send(event)
        except (ClientError, RetryableError) as exc:
            EVENTS_REJECTED.labels(exc.code, project).inc()
            await abort(context, exc)
        EVENTS_ACCEPTED.labels(project).inc()
        return event_pb2.PublishEventResponse(event_id=event.event_id)

    async def PublishEvents(  # noqa: N802
        self, request: event_pb2.PublishEventsRequest, context: grpc.aio.ServicerContext
    ) -> event_pb2.PublishEventsResponse:
        project = ""
        try:
            call = await self._context(context)
            project = call.project_id
            _check_batch(len(request.events), self.services.settings.max_batch_events)
        except (ClientError, RetryableError) as exc:
            EVENTS_REJECTED.labels(exc.code, project).inc()
            await abort(context, exc)
        results: list[event_pb2.EventResult] = []
        events: list[tuple[int, Event]] = []
        for index, message in enumerate(request.events):
            try:
                events.append((index, to_event(message, call, self.services.limits)))
            except ClientError as exc:
                results.append(Result(
                    index=index, status=Result.REJECTED, code=exc.code, message=exc.message, field=exc.field or "",
                ))
        outcomes = await self.services.producer.send_many([event for _, event in events])
        retry_after = 0
        for (index, event), outcome in zip(events, outcomes, strict=True):
            if outcome is None:
                results.append(Result(index=index, status=Result.ACCEPTED, event_id=event.event_id))
            else:
                retry_after = max(retry_after, outcome.retry_after)
                results.append(Result(
                    index=index, status=Result.FAILED, event_id=event.event_id, code=outcome.code, message=outcome.message,
                ))
        results.sort(key=lambda r: r.index)
        counts = Counter(r.status for r in results)
        EVENTS_ACCEPTED.labels(project).inc(counts[Result.ACCEPTED])
        for code, count in Counter(r.code for r in results if r.status != Result.ACCEPTED).items():
            EVENTS_REJECTED.labels(code or "unknown", project).inc(count)
        if not counts[Result.ACCEPTED]:
            await abort(context, _batch_refusal(results, retry_after))
        return event_pb2.PublishEventsResponse(
            accepted=counts[Result.ACCEPTED], rejected=counts[Result.REJECTED], failed=counts[Result.FAILED],
            results=results,
        )


def _check_batch(count: int, max_events: int) -> None:
    if not count:
        raise InvalidEvent("the batch has no events", field="events")
    if count > max_events:
        raise PayloadTooLarge(f"the batch has {count} events; at most {max_events} are accepted per call", field="events")


def _batch_refusal(results: list[event_pb2.EventResult], retry_after: int) -> StreamTrackError:
    """No event accepted: UNAVAILABLE if the broker failed some (retry them all), else INVALID_ARGUMENT."""
    failed = [r for r in results if r.status == Result.FAILED]
    if failed:
        return BrokerUnavailable(
            f"the broker took none of the {len(failed)} valid events ({failed[0].message})", retry_after=retry_after or 1
        )
    shown = "; ".join(
        f"events[{r.index}].{r.field}: {r.message}" if r.field else f"events[{r.index}]: {r.message}"
        for r in results[:SHOWN_REJECTIONS]
    )
    more = f" (and {len(results) - SHOWN_REJECTIONS} more)" if len(results) > SHOWN_REJECTIONS else ""
    return InvalidEvent(f"every event was rejected: {shown}{more}", code=results[0].code)
