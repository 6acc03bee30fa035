"""The gRPC API with the real grpcio client, on Apache Kafka and the worker: what HTTP does, over gRPC.

An event published over gRPC is normalised as POST /track normalises it (the same event sent both
ways is stored the same), refused with the same codes and fields, authenticated with the same write
key in the metadata, answered only after the broker's acknowledgement (a broker that never answers
gives UNAVAILABLE with retry-after), and the server answers health checks and reflection.
"""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from streamtrack.api.grpc import SERVICE_NAME, BackgroundGrpc
from streamtrack.api.grpc.event_pb2 import Event, EventResult, PublishEventRequest, PublishEventsRequest
from streamtrack.api.grpc.event_pb2_grpc import EventServiceStub
from streamtrack.api.services import Services
from streamtrack.kafka import EventProducer
from streamtrack.kafka.ports import free_port
from tests.fixtures.grpc import GrpcApi

TIMEOUT = 30.0


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def refusal(call: pytest.ExceptionInfo[grpc.RpcError]) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    error = call.value
    return error.code(), error.details(), dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]


def properties(data: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def wait_for(api: GrpcApi, count: int, **params: str) -> list[dict]:
    deadline = time.monotonic() + TIMEOUT
    while len(rows := api.read(**params)) < count:
        assert time.monotonic() < deadline, f"{count} events of {params} not stored in {TIMEOUT} s (have {len(rows)})"
        time.sleep(0.1)
    return rows


def test_publish_event_is_stored_as_http_stores_the_same_event(grpc_api: GrpcApi) -> None:
    run = uuid.uuid4().hex[:6]
    at_ms = int(time.time() * 1000) - 60_000
    body = {
        "event_type": "purchase", "user_id": f"grpc-{run}", "session_id": "s1", "url": "https://shop.test/cart",
        "referrer": "https://ref.test/", "channel": "ads", "campaign_id": "c9", "tags": ["a", "b"],
        "properties": {"plan": "pro", "items": 3, "price": 9.5, "nested": {"ok": True, "list": [1, "x", None]}},
    }
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(at_ms)
    with grpc_api.channel() as channel:
        stub = EventServiceStub(channel)
        event = Event(**{k: v for k, v in body.items() if k != "properties"}, event_id=f"g-{run}", timestamp=stamp,
                      properties=properties(body["properties"]))
        before = dict(grpc_api.pipeline.services.producer.delivered)
        reply = stub.PublishEvent(PublishEventRequest(event=event), metadata=bearer(grpc_api.write_key), timeout=TIMEOUT)
        # Answered after the broker acknowledged: the producer's acknowledged offsets moved already.
        assert grpc_api.pipeline.services.producer.delivered != before
    assert reply.event_id == f"g-{run}"
    with grpc_api.pipeline.client(headers={"Authorization": f"Bearer {grpc_api.write_key}"}) as client:
        response = client.post("/track", json={**body, "event_id": f"h-{run}", "timestamp": at_ms})
        assert response.status_code == 202, response.text
    rows = {row["event_id"]: row for row in wait_for(grpc_api, 2, user_id=f"grpc-{run}")}
    over_grpc, over_http = rows[f"g-{run}"], rows[f"h-{run}"]
    assert over_grpc["properties"] == body["properties"]  # whole numbers are integers again
    assert {k: v for k, v in over_grpc.items() if k not in ("event_id", "received_at")} == {
        k: v for k, v in over_http.items() if k not in ("event_id", "received_at")
    }


def test_an_event_without_id_gets_one(grpc_api: GrpcApi) -> None:
    with grpc_api.channel() as channel:
        reply = EventServiceStub(channel).PublishEvent(
            PublishEventRequest(event=Event(event_type="signup", anonymous_id=f"anon-{uuid.uuid4().hex[:6]}")),
            metadata=bearer(grpc_api.write_key), timeout=TIMEOUT,
        )
    assert len(reply.event_id) == 32


@pytest.mark.parametrize(
    ("event", "field", "code", "says"),
    [
        (Event(user_id="u"), "event_type", "invalid_event", "missing: give the event's name"),
        (Event(event_type="x"), "user_id", "invalid_event", "give 'user_id' or 'anonymous_id'"),
        (Event(event_type="x", user_id="u" * 201), "user_id", "invalid_event", "201 characters long; at most 200"),
        (Event(event_type="x", user_id="u", tags=["t"] * 51), "tags", "invalid_event", "has 51 tags; at most 50"),
        (Event(event_type="x", user_id="u", timestamp=timestamp_pb2.Timestamp(seconds=86_400)), "timestamp",
         "invalid_event", "is before 2000-01-01"),
        (Event(event_type="x", user_id="u", timestamp=timestamp_pb2.Timestamp(seconds=int(time.time()) + 3 * 86_400)),
         "timestamp", "invalid_event", "more than 24 hours in the future"),
        (Event(event_type="x", user_id="u", properties=properties({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}})),
         "properties.a.b.c.d.e.f.g.h", "invalid_event", "deeper than 8 levels"),
        (Event(event_type="x", user_id="u", properties=properties({"n": float("nan")})), "properties.n", "invalid_event",
         "expected a finite number"),
        (Event(event_type="x", user_id="u", url="x" * 70_000), None, "event_too_large", "bytes serialized; at most 65536"),
    ],
)
def test_bad_events_are_invalid_argument_naming_the_field(
    grpc_api: GrpcApi, event: Event, field: str | None, code: str, says: str
) -> None:
    with grpc_api.channel() as channel, pytest.raises(grpc.RpcError) as call:
        EventServiceStub(channel).PublishEvent(PublishEventRequest(event=event), metadata=bearer(grpc_api.write_key),
                                               timeout=TIMEOUT)
    status, message, trailers = refusal(call)
    assert status is grpc.StatusCode.INVALID_ARGUMENT
    assert says in message
    assert trailers["streamtrack-code"] == code
    if field is not None:
        assert message.startswith(f"{field}: ") and trailers["streamtrack-field"] == field


@pytest.mark.parametrize(
    ("metadata", "status", "says"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED, "no key: send the write key in the call's metadata"),
        (bearer("stw_not-a-key"), grpc.StatusCode.UNAUTHENTICATED, "the key is unknown or revoked"),
        ((("authorization", "Bearer "),), grpc.StatusCode.UNAUTHENTICATED, "no key"),
        ("read", grpc.StatusCode.PERMISSION_DENIED, "use a write key (stw_...), not a read key"),
    ],
)
def test_auth_failures(grpc_api: GrpcApi, metadata: object, status: grpc.StatusCode, says: str) -> None:
    sent = bearer(grpc_api.read_key) if metadata == "read" else metadata
    with grpc_api.channel() as channel:
        stub = EventServiceStub(channel)
        for call_rpc in (
            lambda: stub.PublishEvent(PublishEventRequest(event=Event(event_type="x", user_id="u")), metadata=sent,
                                      timeout=TIMEOUT),
            lambda: stub.PublishEvents(PublishEventsRequest(events=[Event(event_type="x", user_id="u")]), metadata=sent,
                                       timeout=TIMEOUT),
        ):
            with pytest.raises(grpc.RpcError) as call:
                call_rpc()
            code, message, _ = refusal(call)
            assert (code, says in message) == (status, True), message


def test_the_key_header_of_http_works_too(grpc_api: GrpcApi) -> None:
    with grpc_api.channel() as channel:
        reply = EventServiceStub(channel).PublishEvent(
            PublishEventRequest(event=Event(event_type="x", user_id="key-header")),
            metadata=(("x-streamtrack-key", grpc_api.write_key),), timeout=TIMEOUT,
        )
    assert reply.event_id


def test_publish_events_answers_per_event(grpc_api: GrpcApi) -> None:
    run = uuid.uuid4().hex[:6]
    events = [
        Event(event_type="page_view", user_id=f"batch-{run}", event_id=f"{run}-0"),
        Event(user_id=f"batch-{run}"),  # no event_type
        Event(event_type="click", user_id=f"batch-{run}", event_id=f"{run}-2", properties=properties({"x": 1})),
    ]
    with grpc_api.channel() as channel:
        reply = EventServiceStub(channel).PublishEvents(
            PublishEventsRequest(events=events), metadata=bearer(grpc_api.write_key), timeout=TIMEOUT
        )
    assert (reply.accepted, reply.rejected, reply.failed) == (2, 1, 0)
    assert [(r.index, r.status, r.event_id) for r in reply.results] == [
        (0, EventResult.ACCEPTED, f"{run}-0"), (1, EventResult.REJECTED, ""), (2, EventResult.ACCEPTED, f"{run}-2"),
    ]
    assert (reply.results[1].code, reply.results[1].field) == ("invalid_event", "event_type")
    assert {row["event_id"] for row in wait_for(grpc_api, 2, user_id=f"batch-{run}")} == {f"{run}-0", f"{run}-2"}


def test_publish_events_refusals(grpc_api: GrpcApi) -> None:
    limit = grpc_api.pipeline.settings.max_batch_events
    cases = [
        ([Event(user_id="u"), Event(event_type="x")], "every event was rejected: events[0].event_type: missing"),
        ([], "events: the batch has no events"),
        ([Event(event_type="x", user_id="u")] * (limit + 1), f"events: the batch has {limit + 1} events; at most {limit}"),
    ]
    with grpc_api.channel() as channel:
        stub = EventServiceStub(channel)
        for events, says in cases:
            with pytest.raises(grpc.RpcError) as call:
                stub.PublishEvents(PublishEventsRequest(events=events), metadata=bearer(grpc_api.write_key), timeout=TIMEOUT)
            status, message, _ = refusal(call)
            assert status is grpc.StatusCode.INVALID_ARGUMENT and message.startswith(says), message


def test_no_acknowledgement_no_success(grpc_api: GrpcApi) -> None:
    """A broker that never answers: UNAVAILABLE with retry-after, never OK."""
    dead = grpc_api.pipeline.settings.replace(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", produce_timeout_ms=1500,
    )
    producer = EventProducer(dead)
    services = Services(dead, producer, grpc_api.pipeline.store, grpc_api.pipeline.services.limits)
    server = BackgroundGrpc(services).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = EventServiceStub(channel)
            with pytest.raises(grpc.RpcError) as call:
                stub.PublishEvent(PublishEventRequest(event=Event(event_type="x", user_id="u")),
                                  metadata=bearer(grpc_api.write_key), timeout=TIMEOUT)
            status, message, trailers = refusal(call)
            assert status is grpc.StatusCode.UNAVAILABLE and "broker" in message, message
            assert trailers["streamtrack-code"] == "broker_unavailable" and int(trailers["retry-after"]) >= 1
            with pytest.raises(grpc.RpcError) as call:
                stub.PublishEvents(PublishEventsRequest(events=[Event(event_type="x", user_id="u")]),
                                   metadata=bearer(grpc_api.write_key), timeout=TIMEOUT)
            status, message, trailers = refusal(call)
            assert status is grpc.StatusCode.UNAVAILABLE and message.startswith("the broker took none of the 1 valid events")
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING  # not ready: Kafka does not answer
    finally:
        server.stop()
        producer.close(timeout=1)


def test_health_and_reflection(grpc_api: GrpcApi) -> None:
    with grpc_api.channel() as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        assert check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
        assert check(health_pb2.HealthCheckRequest(service=SERVICE_NAME)).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as call:
            check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert call.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        (listing,) = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {service.name for service in listing.list_services_response.service}
        assert {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
        (described,) = reflect(iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)]))
        assert described.file_descriptor_response.file_descriptor_proto  # what grpcurl builds its requests from


def test_a_refused_call_is_counted_like_http(grpc_api: GrpcApi) -> None:
    from streamtrack.telemetry.metrics import EVENTS_REJECTED

    counter = EVENTS_REJECTED.labels("invalid_event", grpc_api.project_id)
    before = counter._value.get()
    with grpc_api.channel() as channel, pytest.raises(grpc.RpcError):
        EventServiceStub(channel).PublishEvent(PublishEventRequest(event=Event(user_id="u")),
                                               metadata=bearer(grpc_api.write_key), timeout=TIMEOUT)
    assert counter._value.get() == before + 1


def test_over_the_rate_limit_is_resource_exhausted_with_retry_after(grpc_api: GrpcApi) -> None:
    running = grpc_api.pipeline.services
    limited = Services(running.settings.replace(rate_limit_key_per_s=1), running.producer, running.store, running.limits)
    server = BackgroundGrpc(limited).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = EventServiceStub(channel)
            request = PublishEventRequest(event=Event(event_type="x", user_id="limited"))
            codes = []
            for _ in range(4):  # a burst of 2, then 1 a second
                try:
                    stub.PublishEvent(request, metadata=bearer(grpc_api.write_key), timeout=TIMEOUT)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())  # type: ignore[attr-defined]
                    trailers = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
                    assert trailers["streamtrack-code"] == "rate_limited" and int(trailers["retry-after"]) >= 1
                    assert "too many requests from this key" in exc.details()  # type: ignore[attr-defined]
        assert codes[:2] == [grpc.StatusCode.OK] * 2 and grpc.StatusCode.RESOURCE_EXHAUSTED in codes[2:]
    finally:
        server.stop()


def test_a_call_over_the_batch_byte_limit_is_refused_by_grpc(grpc_api: GrpcApi) -> None:
    """STREAMTRACK_MAX_BATCH_BYTES bounds a message: gRPC itself refuses it before it is decoded."""
    limit = grpc_api.pipeline.settings.max_batch_bytes
    events = [Event(event_type="x", user_id="u", url="x" * 8000) for _ in range(limit // 8000 + 10)]
    with grpc_api.channel() as channel, pytest.raises(grpc.RpcError) as call:
        EventServiceStub(channel).PublishEvents(PublishEventsRequest(events=events), metadata=bearer(grpc_api.write_key),
                                                timeout=TIMEOUT)
    status, message, _ = refusal(call)
    assert status is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in message


def test_forwarded_for_is_believed_only_from_configured_proxies(grpc_api: GrpcApi) -> None:
    """As HTTP: `x-forwarded-for` names the client only when the peer is a trusted proxy; the address
    is what events record and what the per-address limiter counts."""
    running = grpc_api.pipeline.services
    store = grpc_api.pipeline.store
    forwarded = (*bearer(grpc_api.write_key), ("x-forwarded-for", "203.0.113.7, 127.0.0.1"))
    stored = {}
    for trusted in ("", "127.0.0.1"):
        services = Services(running.settings.replace(forwarded_allow_ips=trusted), running.producer, store, running.limits)
        server = BackgroundGrpc(services).start()
        user = f"fwd-{uuid.uuid4().hex[:6]}"
        try:
            with grpc.insecure_channel(server.target) as channel:
                EventServiceStub(channel).PublishEvent(
                    PublishEventRequest(event=Event(event_type="x", user_id=user)), metadata=forwarded, timeout=TIMEOUT,
                )
        finally:
            server.stop()
        wait_for(grpc_api, 1, user_id=user)
        (stored[trusted],) = store.backend.query(
            f"SELECT ip FROM `{store.database}`.events WHERE user_id = {{u:String}}", {"u": user},
        )[0]
    assert stored == {"": "127.0.0.1", "127.0.0.1": "203.0.113.7"}
