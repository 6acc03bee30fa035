"""OpenTelemetry traces: set-up from `OTEL_*` variables, and the trace context in Kafka headers.

One trace follows an event from request to row: the API's request span, its producer span
(whose W3C `traceparent` travels in each Kafka record's headers), the worker's batch span
that links to the producer spans of its records, and the ClickHouse insert span under it.

Off by default (`OTEL_TRACES_EXPORTER=none`): the tracer is OpenTelemetry's no-op tracer
and the Kafka helpers return at once, so tracing costs nothing when unused. `otlp` exports
over OTLP/HTTP (endpoint, headers, sampler... from the standard `OTEL_*` variables);
`console` prints spans, for development.

The tracer provider is ours, not OpenTelemetry's process-global one, because the global
one can be set only once per process and tests switch tracing on and off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, NoOpTracer, SpanContext, Tracer

KafkaHeaders = Sequence[tuple[str, bytes | str | None]]

_NOOP = NoOpTracer()
_provider: TracerProvider | None = None
_tracer: Tracer = _NOOP


def configure_tracing(service_name: str, exporter: str = "none", *, span_exporter: SpanExporter | None = None) -> bool:
    """Install a tracer provider for this process; returns whether tracing is on.

    `exporter` is none|otlp|console (the setting OTEL_TRACES_EXPORTER); a given
    `span_exporter` (tests: an in-memory one) wins and exports synchronously.
    OTEL_SERVICE_NAME, when set, names the service instead of `service_name`.
    """
    global _provider, _tracer
    shutdown_tracing()
    name = exporter
    if span_exporter is None and name == "none":
        return False
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    elif name == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif name == "otlp":
        # Imported only when used: it pulls in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: expected none, otlp or console")
    _provider, _tracer = provider, provider.get_tracer("streamtrack")
    return True


def shutdown_tracing() -> None:
    """Export what is buffered and go back to the no-op tracer (at exit, and in tests)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider, _tracer = None, _NOOP


def tracer() -> Tracer:
    """The tracer to start spans with (the no-op tracer while tracing is off)."""
    return _tracer


def tracing_enabled() -> bool:
    return _provider is not None


def inject_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """`headers` plus the current span's `traceparent` (and `tracestate`), when tracing is on."""
    if _provider is None:
        return headers
    carrier: dict[str, str] = {}
    inject(carrier)
    return headers + [(key, value.encode()) for key, value in carrier.items()] if carrier else headers


def span_context_from_headers(headers: KafkaHeaders | None) -> SpanContext | None:
    """The producer span's context carried in a Kafka record's headers, if any."""
    if _provider is None or not headers:
        return None
    carrier = {key: value.decode("latin-1") if isinstance(value, bytes) else value
               for key, value in headers if key in ("traceparent", "tracestate") and value is not None}
    if not carrier:
        return None
    context = trace.get_current_span(extract(carrier)).get_span_context()
    return context if context.is_valid else None


def links_to(contexts: Iterable[SpanContext | None], limit: int = 128) -> list[Link]:
    """One link per distinct producer span, at most `limit` (OpenTelemetry's default cap)."""
    seen: dict[tuple[int, int], Link] = {}
    for context in contexts:
        if context is not None and (context.trace_id, context.span_id) not in seen:
            seen[(context.trace_id, context.span_id)] = Link(context)
            if len(seen) >= limit:
                break
    return list(seen.values())


def parent_of_batch(links: Sequence[Link]) -> otel_context.Context | None:
    """A batch from one producer span continues that trace; a mixed batch starts its own.

    OpenTelemetry's messaging conventions: a consumer span links to the producer spans of its
    messages, and may take the producer as parent when there is only one. That keeps a single
    request's journey in one trace, without tying a 10,000-event batch to one random request.
    """
    if len(links) != 1:
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(links[0].context))
