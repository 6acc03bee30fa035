"""`GET /activities`: recent events, newest first, filtered, paginated by an opaque cursor.

Pagination is keyset, not offset: the cursor holds the (timestamp, event_id) of the last
row served and the next page starts strictly after it, so events arriving meanwhile
never shift or repeat rows across pages. The cursor is base64url JSON: opaque to
clients, cheap to validate.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from streamtrack.api.auth import project_of
from streamtrack.api.errors import QUERY_ERRORS
from streamtrack.api.services import Services
from streamtrack.errors import InvalidParameter
from streamtrack.events import Event
from streamtrack.timestamps import LATEST_MS, format_ms, parse_time

MAX_LIMIT = 1000
MAX_FILTER_CHARS = 200


class Activity(msgspec.Struct):
    event_id: str
    event_type: str
    timestamp: str
    received_at: str
    user_id: str
    anonymous_id: str
    session_id: str
    url: str
    referrer: str
    channel: str
    campaign_id: str
    tags: list[str]
    properties: dict[str, Any]


class ActivityPage(msgspec.Struct):
    data: list[Activity]
    next_cursor: str | None
    """Pass as `cursor` to get the next (older) page; null on the last page."""


def encode_cursor(timestamp_ms: int, event_id: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([timestamp_ms, event_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp_ms, event_id = msgspec.json.decode(raw, type=tuple[int, str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        timestamp_ms, event_id = -1, ""
    if not 0 <= timestamp_ms < LATEST_MS:
        raise InvalidParameter("is not a cursor this API returned; pass next_cursor unchanged", field="cursor")
    return timestamp_ms, event_id


def _time_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        ms = parse_time(value)
    except ValueError as exc:
        raise InvalidParameter(str(exc), field=name) from None
    if ms >= LATEST_MS:
        raise InvalidParameter("is after 2300-01-01; give a time ClickHouse can store", field=name)
    return ms


def _text_param(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > MAX_FILTER_CHARS:
        raise InvalidParameter(f"is longer than {MAX_FILTER_CHARS} characters", field=name)
    return value or None


def to_activity(event: Event) -> Activity:
    return Activity(
        event_id=event.event_id, event_type=event.event_type, timestamp=format_ms(event.timestamp),
        received_at=format_ms(event.received_at), user_id=event.user_id, anonymous_id=event.anonymous_id,
        session_id=event.session_id, url=event.url, referrer=event.referrer, channel=event.channel,
        campaign_id=event.campaign_id, tags=event.tags, properties=event.properties,
    )


@get("/activities", sync_to_thread=True, tags=["query"], summary="Recent events", responses=QUERY_ERRORS)
def activities(
    request: Request,
    services: NamedDependency[Services],
    user_id: Annotated[str | None, QueryParameter(description="Only this user's events.")] = None,
    event_type: Annotated[str | None, QueryParameter(description="Only events of this type.")] = None,
    session_id: Annotated[str | None, QueryParameter(description="Only this session's events.")] = None,
    from_: Annotated[
        str | None, QueryParameter(name="from", description="Earliest event time (inclusive): RFC 3339 or epoch s/ms.")
    ] = None,
    to: Annotated[str | None, QueryParameter(description="Latest event time (exclusive): RFC 3339 or epoch s/ms.")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Events per page.")] = 100,
    cursor: Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.")] = None,
) -> ActivityPage:
    """Events newest first (by event time), each event once even if it was delivered twice."""
    start_ms, end_ms = _time_param(from_, "from"), _time_param(to, "to")
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise InvalidParameter("'from' must be earlier than 'to'", field="from")
    events = services.reads.activities(
        user_id=_text_param(user_id, "user_id"),
        event_type=_text_param(event_type, "event_type"),
        session_id=_text_param(session_id, "session_id"),
        start_ms=start_ms,
        end_ms=end_ms,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
        project_id=project_of(request),  # from the key, never from a parameter
    )
    page, more = events[:limit], len(events) > limit
    next_cursor = encode_cursor(page[-1].timestamp, page[-1].event_id) if more else None
    return ActivityPage(data=[to_activity(e) for e in page], next_cursor=next_cursor)
