"""Analytics: runs the analytics SQL and shapes the answers the /analytics/* endpoints return.

Every answer is one or a few plain aggregations (`analytics`); no corrections, since each
event is stored once. The one question asked first is whether the project has identity
links: without any, users are read as sent (`uid`), which lets projections answer. Inputs
are validated by the API (`streamtrack.api.analytics_params`); times are epoch milliseconds
in, RFC 3339 UTC text out (as /activities).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from streamtrack.store import analytics
from streamtrack.store.analytics import Filter
from streamtrack.store.queries import Query
from streamtrack.store.store import EventStore
from streamtrack.timestamps import format_ms

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 86_400_000
INTERVALS = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS, "week": 7 * DAY_MS}
WEEK_ORIGIN_MS = 4 * DAY_MS
"""1970-01-05, a Monday: weeks start on Mondays (ISO 8601), days at 00:00 UTC."""
OTHER = "other"


class Overview(msgspec.Struct):
    total_events: int
    unique_users: int
    unique_sessions: int
    first_event_at: str | None
    last_event_at: str | None
    events_last_5m: int


class Point(msgspec.Struct):
    t: str
    events: int
    users: int


class Series(msgspec.Struct):
    name: str
    points: list[Point]


class Timeseries(msgspec.Struct):
    interval: str
    from_: str = msgspec.field(name="from")
    to: str
    series: list[Series]


class BreakdownRow(msgspec.Struct):
    value: str
    events: int
    users: int


class Breakdown(msgspec.Struct):
    dimension: str
    rows: list[BreakdownRow]


class PageRow(msgspec.Struct):
    url: str
    views: int
    visitors: int


class TopPages(msgspec.Struct):
    rows: list[PageRow]


class ActiveUsers(msgspec.Struct):
    active_now: int
    window_minutes: int
    date: str
    dau: int
    wau: int
    mau: int


class Sessions(msgspec.Struct):
    sessions: int
    active_sessions_per_user: float
    median_session_seconds: float
    bounce_rate: float
    pages_per_session: float


class FunnelStep(msgspec.Struct):
    step: str
    users: int
    conversion_from_first: float
    conversion_from_previous: float


class Funnel(msgspec.Struct):
    window_seconds: int
    steps: list[FunnelStep]


class Cohort(msgspec.Struct):
    cohort: str
    users: int
    retained: list[int]
    rates: list[float]


class Retention(msgspec.Struct):
    period: str
    cohorts: list[Cohort]


def ratio(part: float, whole: float) -> float:
    """part / whole to 4 decimals; 0 when there is nothing to divide."""
    return round(part / whole, 4) if whole else 0.0


def bucket_origin(interval: str) -> int:
    return WEEK_ORIGIN_MS if interval == "week" else 0


def bucket_starts(start_ms: int, end_ms: int, interval: str) -> list[int]:
    """Start of every bucket that overlaps [start_ms, end_ms), the first one aligned down."""
    step, origin = INTERVALS[interval], bucket_origin(interval)
    first = (start_ms - origin) // step * step + origin
    return list(range(first, end_ms, step))


class Analytics:
    """The analytics reader of one project's EventStore (cheap to build: one per request is fine)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.database = store.database
        self._links: bool | None = None

    def _rows(self, query: Query) -> list[tuple[Any, ...]]:
        return self.store.backend.query(query.sql, query.params)

    @property
    def links(self) -> bool:
        """Whether the project has identity links (asked once per reader)."""
        if self._links is None:
            self._links = self._rows(analytics.has_links(self.database)) == [(1,)]
        return self._links

    def overview(self, *, now_ms: int) -> Overview:
        """All-time totals (users as sent: the `daily` projection), and events in the last 5 minutes."""
        [(events, users, sessions, first, last)] = self._rows(analytics.overview(self.database))
        if not events:
            return Overview(0, 0, 0, None, None, 0)
        [(recent,)] = self._rows(analytics.count_since(self.database, now_ms - 5 * MINUTE_MS))
        # No event with a session id: uniqCombined of nothing but NULLs is NULL.
        return Overview(events, users, sessions or 0, format_ms(first), format_ms(last), recent)

    def timeseries(
        self, filters: Filter, *, interval: str, group_by: str | None = None, top: int = 5
    ) -> Timeseries:
        """Events and users per bucket, zeros included: whole buckets, from the one that holds
        `filters.start_ms` to the one that holds `filters.end_ms - 1` (up to that time's hour)."""
        assert filters.start_ms is not None and filters.end_ms is not None
        names: list[str] = []
        if group_by is not None:
            names = [row.value for row in self._breakdown(filters, by=group_by, limit=top)]
        first = bucket_starts(filters.start_ms, filters.start_ms + 1, interval)[0]
        query = analytics.timeseries(
            self.database,
            analytics.dimension_filter(group_by, filters),
            step_ms=INTERVALS[interval],
            origin_ms=bucket_origin(interval),
            first_ms=first,
            end_ms=filters.end_ms,
            group_by=group_by,
            top=names,
            links=self.links,
        )
        return self._series(filters, self._rows(query), interval=interval, group_by=group_by, names=names)

    def _series(
        self, filters: Filter, rows: list[tuple[Any, ...]], *, interval: str, group_by: str | None, names: list[str]
    ) -> Timeseries:
        """Rows (bucket, is_top, value, events, users) shaped as series, empty buckets as zeros."""
        assert filters.start_ms is not None and filters.end_ms is not None
        counts: dict[str, dict[int, tuple[int, int]]] = {}
        for bucket, is_top, value, events, users in rows:
            name = value if (group_by is None or is_top) else OTHER
            counts.setdefault("all" if group_by is None else name, {})[bucket] = (events, users)
        starts = bucket_starts(filters.start_ms, filters.end_ms, interval)
        order = (
            ["all"]
            if group_by is None
            else [*names, *([OTHER] if OTHER in counts and OTHER not in names else [])]
        )
        series = [
            Series(name, [Point(format_ms(t), *counts.get(name, {}).get(t, (0, 0))) for t in starts])
            for name in order
        ]
        return Timeseries(
            interval=interval, from_=format_ms(filters.start_ms), to=format_ms(filters.end_ms), series=series
        )

    def _breakdown(self, filters: Filter, *, by: str, limit: int) -> list[BreakdownRow]:
        query = analytics.breakdown(
            self.database, analytics.dimension_filter(by, filters), by=by, limit=limit, links=self.links
        )
        return [BreakdownRow(value, events, users) for value, events, users in self._rows(query)]

    def breakdown(self, filters: Filter, *, by: str, limit: int) -> Breakdown:
        return Breakdown(dimension=by, rows=self._breakdown(filters, by=by, limit=limit))

    def top_pages(self, filters: Filter, *, limit: int) -> TopPages:
        """Page views (page_view events that carry a url) per url, with unique visitors."""
        pages = filters._replace(event_type="page_view", with_url=True)
        rows = self._breakdown(pages, by="url", limit=limit)
        return TopPages(rows=[PageRow(url=r.value, views=r.events, visitors=r.users) for r in rows])

    def active_users(self, *, now_ms: int, window_minutes: int, day_ms: int) -> ActiveUsers:
        """Users in the last `window_minutes`; DAU/WAU/MAU of the UTC day starting at `day_ms`
        (users as sent, by whole UTC days: the `daily` projection answers them)."""
        recent = Filter(start_ms=now_ms - window_minutes * MINUTE_MS, end_ms=now_ms + 1)
        [(active_now,)] = self._rows(analytics.unique_users(self.database, recent, links=self.links))
        day = format_ms(day_ms)[:10]
        dau, wau, mau = (
            self._rows(analytics.daily_users(self.database, format_ms(day_ms - back * DAY_MS)[:10], day))[0][0]
            for back in (0, 6, 29)
        )
        return ActiveUsers(active_now=active_now, window_minutes=window_minutes, date=day, dau=dau, wau=wau, mau=mau)

    def sessions(self, filters: Filter) -> Sessions:
        with_session = filters._replace(with_session=True)
        query = analytics.sessions(self.database, with_session, links=self.links)
        [(count, users, median, bounces, pages)] = self._rows(query)
        return Sessions(
            sessions=count,
            active_sessions_per_user=ratio(count, users),
            median_session_seconds=round(float(median), 3) if count else 0.0,
            bounce_rate=ratio(bounces, count),
            pages_per_session=ratio(pages, count),
        )

    def funnel(self, filters: Filter, *, steps: Sequence[str], window_seconds: int) -> Funnel:
        """Users who did step 1, then step 2 … within `window_seconds` of their step 1 (windowFunnel)."""
        scoped = filters._replace(event_types=tuple(dict.fromkeys(steps)))
        query = analytics.funnel(self.database, scoped, steps=steps, window_ms=window_seconds * 1000, links=self.links)
        at_level = dict(self._rows(query))
        reached = [sum(n for level, n in at_level.items() if level >= k) for k in range(1, len(steps) + 1)]
        return Funnel(
            window_seconds=window_seconds,
            steps=[
                FunnelStep(
                    step,
                    users,
                    ratio(users, reached[0]),
                    ratio(users, reached[i - 1]) if i else 1.0 if users else 0.0,
                )
                for i, (step, users) in enumerate(zip(steps, reached, strict=True))
            ],
        )

    def retention(self, filters: Filter, *, period: str, periods: int) -> Retention:
        """Cohorts by first-seen period in the range; `retained[k]`: of them, active k periods later.

        A cohort lists only the periods that have begun before the range's end.
        """
        assert filters.end_ms is not None
        query = analytics.retention(self.database, filters, period=period, periods=periods, links=self.links)
        step = INTERVALS[period]
        last = bucket_starts(filters.end_ms - 1, filters.end_ms, period)[0]
        cohorts = []
        for cohort, users, back in self._rows(query):
            start = bucket_starts(_day_ms(cohort), _day_ms(cohort) + 1, period)[0]
            seen = back[: min(periods, (last - start) // step + 1)]
            cohorts.append(
                Cohort(cohort=cohort, users=users, retained=seen, rates=[ratio(n, users) for n in seen])
            )
        return Retention(period=period, cohorts=cohorts)


def _day_ms(date: str) -> int:
    """Epoch ms of a YYYY-MM-DD date at 00:00 UTC."""
    return int(datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
