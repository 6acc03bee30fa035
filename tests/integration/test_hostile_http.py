"""Hostile HTTP: random methods, paths, headers (a garbage `traceparent` included) and bodies
never get a 5xx, with tracing on so the trace-context parser sees them too.

The bodies and query strings of the known endpoints are fuzzed in test_bad_input.py.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from streamtrack.telemetry.tracing import configure_tracing, shutdown_tracing
from tests.fixtures.pipeline import Pipeline

PATHS = ["/track", "/batch", "/activities", "/metrics", "/healthz", "/readyz", "/schema/openapi.json", "/"]
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80).map(str.strip)  # h11 refuses edge spaces
traceparents = st.one_of(
    header_text,
    st.builds(
        lambda v, t, s, f: f"{v}-{t}-{s}-{f}",
        st.text(alphabet=string.hexdigits, min_size=2, max_size=2),
        st.text(alphabet=string.hexdigits, min_size=0, max_size=34),
        st.text(alphabet=string.hexdigits, min_size=0, max_size=18),
        st.text(alphabet=string.hexdigits, min_size=0, max_size=3),
    ),
)


@pytest.fixture(scope="module", autouse=True)
def tracing() -> Iterator[None]:
    configure_tracing("streamtrack-test", span_exporter=InMemorySpanExporter())
    yield
    shutdown_tracing()


@settings(max_examples=int(os.environ.get("STREAMTRACK_FUZZ_EXAMPLES", "150")), deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.sampled_from(PATHS) | st.text(alphabet=string.ascii_letters + string.digits + "/-._~%", max_size=40).map("/{}".format),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "traceparent": traceparents, "tracestate": header_text, "content-type": header_text,
            "accept": header_text, "user-agent": header_text, "x-forwarded-for": header_text,
        },
    ),
    body=st.binary(max_size=200),
)
def test_no_request_gets_a_server_error(pipeline: Pipeline, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
    with pipeline.client() as client:
        response = client.request(method, path, headers=headers, content=body if method != "GET" else None)
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code >= 400 and method != "HEAD":
        assert response.json()["message"]
