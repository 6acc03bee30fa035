"""One trace follows an event from the HTTP request to its ClickHouse row, through Kafka headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, SpanKind

from streamtrack.kafka.producer import HEADERS
from streamtrack.telemetry.logs import add_trace_ids
from streamtrack.telemetry.tracing import (
    configure_tracing,
    inject_headers,
    links_to,
    parent_of_batch,
    shutdown_tracing,
    span_context_from_headers,
    tracer,
)
from tests.fixtures.pipeline import Pipeline


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("streamtrack-test", span_exporter=exporter)
    yield exporter
    shutdown_tracing()


def stored(pipeline: Pipeline, event_id: str) -> bool:
    return any(e.event_id == event_id for e in pipeline.store.activities(user_id="tracer", limit=100))


def finished(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


def test_one_event_makes_one_trace_from_request_to_row(spans: InMemorySpanExporter, pipeline: Pipeline) -> None:
    event_id = f"traced-{uuid.uuid4().hex[:8]}"
    with pipeline.client() as client:
        response = client.post("/track", json={"event_type": "page_view", "user_id": "tracer", "event_id": event_id})
    assert response.status_code == 202
    pipeline.wait_for(lambda: stored(pipeline, event_id), what="the traced event in ClickHouse")

    [http] = [s for s in spans.get_finished_spans() if s.name == "POST /track" and s.kind == SpanKind.SERVER]
    trace_id = http.context.trace_id
    pipeline.wait_for(lambda: any(s.kind == SpanKind.CONSUMER for s in finished(spans, trace_id)),
                      what="the batch span to end")
    by_kind = {s.kind: s for s in finished(spans, trace_id)}
    produce, batch = by_kind[SpanKind.PRODUCER], by_kind[SpanKind.CONSUMER]
    [insert] = [s for s in finished(spans, trace_id) if s.name.startswith("INSERT ")]

    assert produce.name == f"publish {pipeline.settings.topic}"
    assert produce.parent.span_id == http.context.span_id
    assert batch.name == f"process {pipeline.settings.topic}"
    assert batch.parent.span_id == produce.context.span_id  # one producer span: its trace continues
    assert [link.context.span_id for link in batch.links] == [produce.context.span_id]
    assert insert.parent.span_id == batch.context.span_id
    assert insert.attributes["db.system.name"] == "clickhouse"
    assert insert.attributes["db.operation.batch.size"] == 1
    assert http.attributes["http.route"] == "/track" and http.attributes["http.response.status_code"] == 202


def test_a_callers_traceparent_is_continued(spans: InMemorySpanExporter, pipeline: Pipeline) -> None:
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    header = f"00-{caller_trace}-b7ad6b7169203331-01"
    with pipeline.client() as client:
        response = client.post("/track", json={"event_type": "x", "user_id": "tracer"}, headers={"traceparent": header})
    assert response.status_code == 202
    def traced() -> list[ReadableSpan]:
        return finished(spans, int(caller_trace, 16))

    # the server span ends just after the response went out
    pipeline.wait_for(lambda: {s.kind for s in traced()} >= {SpanKind.SERVER, SpanKind.PRODUCER}, what="both spans")
    [http] = [s for s in traced() if s.kind == SpanKind.SERVER]
    assert http.parent.span_id == int("b7ad6b7169203331", 16)


def test_log_lines_carry_the_span_ids(spans: InMemorySpanExporter) -> None:
    assert add_trace_ids(None, "info", {}) == {}
    with tracer().start_as_current_span("work") as span:
        line = add_trace_ids(None, "info", {"event": "hello"})
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


def test_a_batch_of_many_requests_starts_its_own_trace_with_links(spans: InMemorySpanExporter) -> None:
    contexts = []
    for _ in range(3):
        with tracer().start_as_current_span("publish"):
            contexts.append(span_context_from_headers(inject_headers(HEADERS)))
    links = links_to([*contexts, contexts[0], None])
    assert [link.context for link in links] == contexts  # one link per producer span
    assert parent_of_batch(links) is None
    assert parent_of_batch(links[:1]) is not None


def test_tracing_off_is_a_no_op(spans: InMemorySpanExporter) -> None:
    shutdown_tracing()
    try:
        assert isinstance(tracer(), NoOpTracer)
        with tracer().start_as_current_span("anything"):
            assert inject_headers(HEADERS) is HEADERS  # no header, no copy
        assert span_context_from_headers([("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]) is None
    finally:
        configure_tracing("streamtrack-test", span_exporter=spans)
