"""`GET /analytics/*`: product analytics over the stored events, each event counted once.

Handlers are thin: parameters are checked in `analytics_params`, the work is done by the
store's `Analytics` reader, and each answer is documented with an example in the OpenAPI.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from streamtrack.api import analytics_params as p
from streamtrack.api.auth import project_of
from streamtrack.api.errors import QUERY_ERRORS
from streamtrack.api.services import Services
from streamtrack.store.analytics_reader import (
    ActiveUsers,
    Analytics,
    Breakdown,
    Funnel,
    Overview,
    Retention,
    Sessions,
    Timeseries,
    TopPages,
)
from streamtrack.store.scoped import project_store
from streamtrack.timestamps import now_ms

FROM = QueryParameter(
    name="from", description="Start (inclusive): RFC 3339 or epoch s/ms. Default: 7 days before `to`."
)
TO = QueryParameter(description="End (exclusive): RFC 3339 or epoch s/ms. Default: now.")
EVENT_TYPE = QueryParameter(description="Only events of this type.")
USER_ID = QueryParameter(
    description="Only this user's events (user_id, or anonymous_id for anonymous visitors)."
)
URL = QueryParameter(description="Only events on this url.")
CHANNEL = QueryParameter(description="Only events of this channel.")
PROPERTY = QueryParameter(
    name="property",
    description="`key:value`: only events whose top-level property `key` equals `value`; repeatable (≤ 10).",
)
DIMENSION_DOC = "event_type, url, referrer, channel, campaign, or property:KEY (a top-level property)."


def _ok(model: type, example: dict[str, Any], description: str) -> dict[int, ResponseSpec]:
    spec = ResponseSpec(
        data_container=model,
        generate_examples=False,
        description=description,
        examples=[Example(summary="example", value=example)],
    )
    return {200: spec, **QUERY_ERRORS}


def _reader(services: Services, request: Request) -> Analytics:
    """Every analytics answer is read through the caller's project (see `streamtrack.store.scoped`)."""
    return Analytics(project_store(services.reads, project_of(request)))


@get(
    "/analytics/overview",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Totals since the first event",
    responses=_ok(
        Overview,
        {
            "total_events": 1250000,
            "unique_users": 48211,
            "unique_sessions": 190432,
            "first_event_at": "2026-01-01T00:00:03.120Z",
            "last_event_at": "2026-01-31T11:59:58.870Z",
            "events_last_5m": 812,
        },
        "All-time totals; users and sessions are uniqCombined estimates.",
    ),
)
def overview(request: Request, services: NamedDependency[Services]) -> Overview:
    """Total events, unique users and sessions, first and last event time, events in the last 5 minutes."""
    return _reader(services, request).overview(now_ms=now_ms())


@get(
    "/analytics/timeseries",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Events and users per time bucket",
    responses=_ok(
        Timeseries,
        {
            "interval": "hour",
            "from": "2026-01-31T00:00:00.000Z",
            "to": "2026-01-31T02:00:00.000Z",
            "series": [
                {
                    "name": "page_view",
                    "points": [
                        {"t": "2026-01-31T00:00:00.000Z", "events": 120, "users": 40},
                        {"t": "2026-01-31T01:00:00.000Z", "events": 0, "users": 0},
                    ],
                },
                {
                    "name": "other",
                    "points": [
                        {"t": "2026-01-31T00:00:00.000Z", "events": 31, "users": 12},
                        {"t": "2026-01-31T01:00:00.000Z", "events": 4, "users": 2},
                    ],
                },
            ],
        },
        "One series `all`, or with group_by the top N values and `other`; empty buckets are zeros.",
    ),
)
def timeseries(
    request: Request, services: NamedDependency[Services],
    from_: Annotated[str | None, FROM] = None,
    to: Annotated[str | None, TO] = None,
    interval: Annotated[
        str,
        QueryParameter(
            description="auto, minute, hour, day or week (weeks start on Monday, UTC). auto: the finest with ≤ 300 buckets; "
            f"at most {p.MAX_BUCKETS} buckets."
        ),
    ] = "auto",
    event_type: Annotated[str | None, EVENT_TYPE] = None,
    user_id: Annotated[str | None, USER_ID] = None,
    url: Annotated[str | None, URL] = None,
    channel: Annotated[str | None, CHANNEL] = None,
    property_: Annotated[list[str] | None, PROPERTY] = None,
    group_by: Annotated[
        str | None, QueryParameter(description=f"One series per value of: {DIMENSION_DOC}")
    ] = None,
    top: Annotated[
        int,
        QueryParameter(
            ge=1,
            le=p.MAX_TOP,
            description="With group_by: series for the top N values by events, the rest in `other`.",
        ),
    ] = 5,
) -> Timeseries:
    """Events (deduplicated) and unique users per bucket from `from` to `to`."""
    start, end = p.time_range(from_, to, now_ms=now_ms())
    chosen = p.interval(interval, start, end)
    dimension = p.dimension(group_by, "group_by") if group_by else None
    filters = p.filters(
        start, end, event_type=event_type, user_id=user_id, url=url, channel=channel, property_=property_
    )
    return _reader(services, request).timeseries(filters, interval=chosen, group_by=dimension, top=top)


@get(
    "/analytics/breakdown",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Events and users per value of a dimension",
    responses=_ok(
        Breakdown,
        {
            "dimension": "channel",
            "rows": [
                {"value": "email", "events": 5120, "users": 810},
                {"value": "ads", "events": 2210, "users": 1432},
            ],
        },
        "Most events first; a property breakdown counts only events that have the property.",
    ),
)
def breakdown(
    request: Request, services: NamedDependency[Services],
    dimension: Annotated[str | None, QueryParameter(description=f"Required: {DIMENSION_DOC}")] = None,
    from_: Annotated[str | None, FROM] = None,
    to: Annotated[str | None, TO] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=p.MAX_LIMIT, description="Most rows.")] = 20,
    event_type: Annotated[str | None, EVENT_TYPE] = None,
    user_id: Annotated[str | None, USER_ID] = None,
    url: Annotated[str | None, URL] = None,
    channel: Annotated[str | None, CHANNEL] = None,
    property_: Annotated[list[str] | None, PROPERTY] = None,
) -> Breakdown:
    """Events (deduplicated) and unique users grouped by one dimension."""
    start, end = p.time_range(from_, to, now_ms=now_ms())
    by = p.dimension(dimension, "dimension")
    filters = p.filters(
        start, end, event_type=event_type, user_id=user_id, url=url, channel=channel, property_=property_
    )
    return _reader(services, request).breakdown(filters, by=by, limit=limit)


@get(
    "/analytics/top-pages",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Most viewed pages",
    responses=_ok(
        TopPages,
        {
            "rows": [
                {"url": "https://shop.example/", "views": 9120, "visitors": 4410},
                {"url": "https://shop.example/pricing", "views": 3012, "visitors": 2250},
            ],
        },
        "page_view events that carry a url, per url.",
    ),
)
def top_pages(
    request: Request, services: NamedDependency[Services],
    from_: Annotated[str | None, FROM] = None,
    to: Annotated[str | None, TO] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=p.MAX_LIMIT, description="Most pages.")] = 10,
) -> TopPages:
    """The top pages by views (page_view events), with unique visitors."""
    start, end = p.time_range(from_, to, now_ms=now_ms())
    return _reader(services, request).top_pages(p.filters(start, end), limit=limit)


@get(
    "/analytics/active-users",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Active users now, DAU, WAU, MAU",
    responses=_ok(
        ActiveUsers,
        {
            "active_now": 37,
            "window_minutes": 5,
            "date": "2026-01-31",
            "dau": 1210,
            "wau": 5630,
            "mau": 17400,
        },
        "DAU: users on that UTC day; WAU: that day and the 6 before; MAU: that day and the 29 before.",
    ),
)
def active_users(
    request: Request, services: NamedDependency[Services],
    window_minutes: Annotated[
        int, QueryParameter(ge=1, le=p.MAX_WINDOW_MINUTES, description="'Now' means the last N minutes.")
    ] = 5,
    date: Annotated[
        str | None, QueryParameter(description="YYYY-MM-DD (UTC) for DAU/WAU/MAU. Default: today.")
    ] = None,
) -> ActiveUsers:
    """Users active in the last `window_minutes`, and daily/weekly/monthly active users for a date."""
    now = now_ms()
    return _reader(services, request).active_users(
        now_ms=now, window_minutes=window_minutes, day_ms=p.day(date, now_ms=now)
    )


@get(
    "/analytics/sessions",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Session statistics",
    responses=_ok(
        Sessions,
        {
            "sessions": 4210,
            "active_sessions_per_user": 1.8342,
            "median_session_seconds": 184.5,
            "bounce_rate": 0.3121,
            "pages_per_session": 3.4012,
        },
        "Sessions are session ids; events without one are not counted.",
    ),
)
def sessions(
    request: Request, services: NamedDependency[Services],
    from_: Annotated[str | None, FROM] = None,
    to: Annotated[str | None, TO] = None,
) -> Sessions:
    """Sessions, sessions per user, median length (first to last event), bounce rate (one-event sessions), page views per session."""
    start, end = p.time_range(from_, to, now_ms=now_ms())
    return _reader(services, request).sessions(p.filters(start, end))


@get(
    "/analytics/funnel",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Conversion through ordered steps",
    responses=_ok(
        Funnel,
        {
            "window_seconds": 3600,
            "steps": [
                {
                    "step": "page_view",
                    "users": 1000,
                    "conversion_from_first": 1.0,
                    "conversion_from_previous": 1.0,
                },
                {
                    "step": "add_to_cart",
                    "users": 240,
                    "conversion_from_first": 0.24,
                    "conversion_from_previous": 0.24,
                },
                {
                    "step": "purchase",
                    "users": 60,
                    "conversion_from_first": 0.06,
                    "conversion_from_previous": 0.25,
                },
            ],
        },
        "Users who did step 1, then each next step in order within window_seconds of step 1 (ClickHouse windowFunnel).",
    ),
)
def funnel(
    request: Request, services: NamedDependency[Services],
    steps: Annotated[
        list[str] | None, QueryParameter(description="2 to 10 event types, in order: steps=a&steps=b…")
    ] = None,
    window_seconds: Annotated[
        int,
        QueryParameter(
            ge=1, le=p.MAX_FUNNEL_WINDOW_S, description="Time from step 1 to the last step (≤ 90 days)."
        ),
    ] = 3600,
    from_: Annotated[str | None, FROM] = None,
    to: Annotated[str | None, TO] = None,
) -> Funnel:
    """How many users went through each step, and the conversion rates."""
    checked = p.funnel_steps(steps)
    start, end = p.time_range(from_, to, now_ms=now_ms())
    return _reader(services, request).funnel(p.filters(start, end), steps=checked, window_seconds=window_seconds)


@get(
    "/analytics/retention",
    sync_to_thread=True,
    tags=["analytics"],
    summary="Cohort retention",
    responses=_ok(
        Retention,
        {
            "period": "week",
            "cohorts": [
                {
                    "cohort": "2026-01-05",
                    "users": 400,
                    "retained": [400, 120, 90],
                    "rates": [1.0, 0.3, 0.225],
                },
                {"cohort": "2026-01-12", "users": 350, "retained": [350, 98], "rates": [1.0, 0.28]},
            ],
        },
        "Cohorts by first-seen period in the range; retained[k]: users of the cohort active k periods later.",
    ),
)
def retention(
    request: Request, services: NamedDependency[Services],
    period: Annotated[str, QueryParameter(description="day or week (weeks start on Monday, UTC).")] = "day",
    periods: Annotated[
        int, QueryParameter(description="Periods per cohort, the first included (day ≤ 90, week ≤ 52).")
    ] = 8,
    from_: Annotated[str | None, FROM] = None,
    to: Annotated[str | None, TO] = None,
) -> Retention:
    """For each cohort of new users, how many came back in each later period. Default range: the last `periods` periods."""
    checked = p.period(period, periods)
    start, end = p.retention_range(from_, to, period_name=checked, periods=periods, now_ms=now_ms())
    return _reader(services, request).retention(p.filters(start, end), period=checked, periods=periods)


ANALYTICS_HANDLERS = [overview, timeseries, breakdown, top_pages, active_users, sessions, funnel, retention]
