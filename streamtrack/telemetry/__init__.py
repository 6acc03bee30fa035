"""Telemetry: structlog logs, OpenTelemetry traces and Prometheus metrics, set up in one place.

`metrics` holds every metric object (import them from there); `tracing` the tracer and the
Kafka-header propagation; `logs` the one logging configuration.
"""

from streamtrack.telemetry.logs import configure_logging
from streamtrack.telemetry.tracing import configure_tracing, shutdown_tracing, tracer

__all__ = ["configure_logging", "configure_tracing", "shutdown_tracing", "tracer"]
