"""`GET /dead-letters`: records the worker refused, newest first, with why; and their counts by reason.

Whose: a project's read key sees the dead letters naming its project; records with no
known project (not events at all: garbage, another producer's bytes) are the instance's,
shown only to an admin key (`sta_…`), which may also pick a project with `project`
(`project=` empty: only the project-less). With auth off the one open project is the instance.
Rows come from ClickHouse's `dead_letters` table (`streamtrack.store.deadletters`), fed from
the dead-letter topic by the workers' loader. Pagination is keyset on (dead_at, partition,
offset), like /activities. The original bytes travel as base64 (`value_text` too when they
are UTF-8), so any record survives JSON.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from streamtrack.api.activities import _text_param, _time_param
from streamtrack.api.auth import project_of, sees_the_instance
from streamtrack.api.errors import QUERY_ERRORS
from streamtrack.api.services import Services
from streamtrack.errors import ClientError, InvalidParameter
from streamtrack.store import deadletters as table
from streamtrack.timestamps import format_ms

MAX_LIMIT = 500


class NotYourProject(ClientError):
    status = 403
    code = "forbidden"


class Header(msgspec.Struct):
    name: str
    value_base64: str


class DeadLetterItem(msgspec.Struct):
    id: str
    """partition:offset in the dead-letter topic (what `streamtrack dlq show|replay` take)."""
    reason: str
    error: str
    project_id: str | None
    """null: the record names no project (an admin's to see)."""
    event_id: str | None
    dead_at: str
    status: str
    """dead, or replayed (`streamtrack dlq replay`)."""
    replays: int
    topic: str
    partition: int
    offset: int
    key_base64: str | None
    value_base64: str | None
    """The original record's bytes; null: it had no value."""
    value_text: str | None
    """The same bytes as text when they are UTF-8."""
    headers: list[Header]


class DeadLetterPage(msgspec.Struct):
    data: list[DeadLetterItem]
    next_cursor: str | None


class DeadLetterCounts(msgspec.Struct):
    counts: dict[str, int]
    """Dead letters (status dead) by reason."""
    total: int


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _text(data: bytes | None) -> str | None:
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def to_item(letter: table.DeadLetter) -> DeadLetterItem:
    return DeadLetterItem(
        id=letter.id, reason=letter.reason, error=letter.error, project_id=letter.project_id or None,
        event_id=letter.event_id or None, dead_at=format_ms(letter.dead_at), status=letter.status,
        replays=letter.replays, topic=letter.topic, partition=letter.partition, offset=letter.offset,
        key_base64=_b64(letter.key), value_base64=_b64(letter.value), value_text=_text(letter.value),
        headers=[Header(name, base64.b64encode(value).decode()) for name, value in letter.headers],
    )


def _cursor(letter: table.DeadLetter) -> str:
    raw = msgspec.json.encode([letter.dead_at, letter.dlq_partition, letter.dlq_offset])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[int, int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = msgspec.json.decode(raw, type=tuple[int, int, int])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidParameter("is not a cursor this API returned; pass next_cursor unchanged", field="cursor") from None
    if min(after) < 0:
        raise InvalidParameter("is not a cursor this API returned; pass next_cursor unchanged", field="cursor")
    return after


def _scope(request: Request, project: str | None) -> str | None:
    """The project filter the caller may use: its own project, or (admin) any or none."""
    if sees_the_instance(request):
        return _text_param(project, "project") if project else project  # '' stays '': the project-less
    own = project_of(request)
    if project is not None and project != own:
        raise NotYourProject("a read key sees its own project's dead letters only; use an admin key", field="project")
    return own


@get("/dead-letters", sync_to_thread=True, tags=["dead letters"], summary="Records the worker refused, with why",
     responses={**QUERY_ERRORS, 403: QUERY_ERRORS[400]})
def dead_letters(
    request: Request,
    services: NamedDependency[Services],
    reason: Annotated[str | None, QueryParameter(description="Only this reason (undecodable, invalid_event, record_too_large).")] = None,
    status: Annotated[str, QueryParameter(description="dead (default), replayed or all.")] = "dead",
    project: Annotated[str | None, QueryParameter(description="Admin keys: only this project's; empty: only those with no project.")] = None,
    from_: Annotated[str | None, QueryParameter(name="from", description="Refused at or after: RFC 3339 or epoch s/ms.")] = None,
    to: Annotated[str | None, QueryParameter(description="Refused before: RFC 3339 or epoch s/ms.")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Rows per page.")] = 50,
    cursor: Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.")] = None,
) -> DeadLetterPage:
    if status not in ("dead", "replayed", "all"):
        raise InvalidParameter("must be dead, replayed or all", field="status")
    since, until = _time_param(from_, "from"), _time_param(to, "to")
    if since is not None and until is not None and since >= until:
        raise InvalidParameter("'from' must be earlier than 'to'", field="from")
    flt = table.Filter(project_id=_scope(request, project), reason=_text_param(reason, "reason"),
                       status=None if status == "all" else status, since_ms=since, until_ms=until)
    rows = table.select(services.store, flt, limit=limit + 1, after=_after(cursor) if cursor else None)
    page, more = rows[:limit], len(rows) > limit
    return DeadLetterPage(data=[to_item(r) for r in page], next_cursor=_cursor(page[-1]) if more else None)


@get("/dead-letters/counts", sync_to_thread=True, tags=["dead letters"], summary="Dead letters by reason",
     responses=QUERY_ERRORS)
def dead_letter_counts(request: Request, services: NamedDependency[Services]) -> DeadLetterCounts:
    """For the dashboard's card: the caller's project's (an admin: the instance's) dead letters by reason."""
    counts = table.counts_by_reason(services.store, None if sees_the_instance(request) else project_of(request))
    return DeadLetterCounts(counts=counts, total=sum(counts.values()))


DEAD_LETTER_HANDLERS = [dead_letters, dead_letter_counts]
