"""`/dev/loadgen`: the dashboard's buttons to start and stop load, in dev mode only.

Registered only by `streamtrack dev` (see `loadgen_router`), never in a deployment: it
makes the API send traffic to itself. The work is in `streamtrack.loadgen.control`; these
handlers only check the request and map it. They are synchronous (run on a thread) because
starting and stopping wait for a child process.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import RawBody

from streamtrack.api.auth import project_of
from streamtrack.api.errors import ErrorBody
from streamtrack.api.services import Services
from streamtrack.auth.dev_keys import DEV_PROJECT
from streamtrack.errors import ClientError
from streamtrack.loadgen.control import LoadgenControl
from streamtrack.normalize import decode_json

MAX_RATE = 100_000
MAX_DURATION_S = 24 * 3600
MAX_BODY_BYTES = 4096


class StartLoad(msgspec.Struct, forbid_unknown_fields=True):
    rate: Annotated[float, msgspec.Meta(gt=0, le=MAX_RATE)]
    """Target events per second (the dashboard offers 100, 1,000 and 10,000)."""
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_DURATION_S)] | None = None
    """Stop by itself after this many seconds; absent: run until DELETE."""


_ERRORS = {
    400: ResponseSpec(
        data_container=ErrorBody, generate_examples=False,
        description="The body is not JSON, or `rate`/`duration_s` is missing, unknown, of the wrong type or out of range.",
    )
}


class NotTheDevProject(ClientError):
    status = 403
    code = "forbidden"


def dev_project_only(request: Request[Any, Any, Any], services: Services) -> None:
    """The load generator is the dev instance's, not any project's: with auth on, only the key of
    project `dev` (the one `streamtrack dev --auth on` prints) may drive it or read its figures."""
    if services.settings.auth and project_of(request) != DEV_PROJECT:
        raise NotTheDevProject(
            f"the load generator answers only the read key of project '{DEV_PROJECT}' (printed by `streamtrack dev`)"
        )


_DEV_KEY = {403: ResponseSpec(data_container=ErrorBody, generate_examples=False,
                              description=f"A key of a project other than '{DEV_PROJECT}'.")}


@get("/dev/loadgen", tags=["dev"], summary="Load generator status", sync_to_thread=False, responses=_DEV_KEY)
def loadgen_status(
    request: Request[Any, Any, Any], services: NamedDependency[Services], loadgen: NamedDependency[LoadgenControl]
) -> dict[str, Any]:
    """{running, rate, sent, accepted, errors, achieved_rate, p50_ms, p95_ms, p99_ms, elapsed_s}"""
    dev_project_only(request, services)
    return loadgen.status()


@post("/dev/loadgen", status_code=202, tags=["dev"], summary="Start the load generator",
      responses={**_ERRORS, **_DEV_KEY}, sync_to_thread=True)
def start_loadgen(
    request: Request[Any, Any, Any], body: RawBody, services: NamedDependency[Services],
    loadgen: NamedDependency[LoadgenControl],
) -> dict[str, Any]:
    """Start sending `rate` events/s to this API (a running generator is replaced)."""
    dev_project_only(request, services)
    start = parse_start(body)
    return loadgen.start(start.rate, start.duration_s)


@delete("/dev/loadgen", status_code=200, tags=["dev"], summary="Stop the load generator", sync_to_thread=True,
        responses=_DEV_KEY)
def stop_loadgen(
    request: Request[Any, Any, Any], services: NamedDependency[Services], loadgen: NamedDependency[LoadgenControl]
) -> dict[str, Any]:
    """Stop it (requests in flight finish) and return the final status; harmless when idle."""
    dev_project_only(request, services)
    return loadgen.stop()


def parse_start(body: bytes) -> StartLoad:
    """The POST body, or a ClientError naming the field at fault."""
    if len(body) > MAX_BODY_BYTES:
        raise ClientError(f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted here")
    if not body.strip():
        raise ClientError('the body is empty; send e.g. {"rate": 1000}', code="empty_body")
    try:
        return msgspec.convert(decode_json(body), StartLoad)
    except msgspec.ValidationError as exc:
        named = re.search(r"at `\$\.(\w+)`|field `(\w+)`", str(exc))
        name = next((group for group in named.groups() if group), None) if named else None
        raise ClientError(str(exc), field=name, code="invalid_parameter") from None


def loadgen_router(control: LoadgenControl) -> Router:
    """The /dev/loadgen routes around one control; pass it to `create_app(extra_handlers=...)`."""
    return Router(
        path="/",
        route_handlers=[loadgen_status, start_loadgen, stop_loadgen],
        dependencies={"loadgen": Provide(lambda: control, use_cache=True, sync_to_thread=False)},
    )

