"""One logging configuration: structlog, JSON lines in services, readable lines in a terminal.

Every line logged inside a span carries its `trace_id` and `span_id`, so a log line leads
to its trace and back. Standard-library loggers (librdkafka, uvicorn, kopf) go through the
same processors and renderer, so a service writes one format only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace


def add_trace_ids(_logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The current span's ids, in the hex form trace back-ends show (nothing outside a span)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is now (tests swap it), not to the one at set-up."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """JSON when not on a terminal (containers, CI, pipes), readable lines otherwise; `json` forces one.

    Colours only on a terminal, and not when NO_COLOR is set (no-color.org).
    """
    terminal = sys.stderr.isatty()
    if json is None:
        json = not terminal
    numeric = logging.getLevelName(level.upper())
    colors = terminal and not os.environ.get("NO_COLOR")
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=colors)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)  # configuring twice must not print every line twice
    root.addHandler(handler)
    root.setLevel(numeric)
