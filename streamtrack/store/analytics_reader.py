"""Analytics: runs the analytics SQL and shapes the answers the /analytics/* endpoints return.

Each method first asks the copies registry (`copies`) which event ids are stored more than
once around its time range, then runs one analytic query over each event's earliest copy
(see `analytics`). Inputs are
already validated by the API (`streamtrack.api.analytics_params`); times are epoch
milliseconds in, RFC 3339 UTC text out (as /activities).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from streamtrack.store import analytics, copies, rollups
from streamtrack.store.analytics import Filter
from streamtrack.store.queries import Query
from streamtrack.store.store import EventStore
from streamtrack.timestamps import format_ms

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
MAX_IDS = 10_000
"""Most copied ids the rollup answers correct (passed as a parameter); beyond, the raw rows answer."""
DAY_MS = 86_400_000
INTERVALS = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS, "week": 7 * DAY_MS}
WEEK_ORIGIN_MS = 4 * DAY_MS
"""1970-01-05, a Monday: weeks start on Mondays (ISO 8601), days at 00:00 UTC."""
OTHER = "other"
MAX_RAW_BUCKETS = 100
"""Most buckets the hourly rollup answers from the raw rows (copies crossing into them); beyond, all raw."""


class Corrections(NamedTuple):
    """How the hourly rollup's answer is made exact (see `Analytics._extra_rows`)."""

    extra: list[tuple[int, str, int]]
    raw_buckets: list[int]
    skipped: list[str]


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
    """The analytics reader of one EventStore (cheap to build: one per request is fine)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.database = store.database

    def _rows(self, query: Query) -> list[tuple[Any, ...]]:
        return self.store.backend.query(query.sql, query.params)

    def duplicates(self, filters: Filter) -> list[str] | None:
        """The ids stored more than once around `filters`' time range, from the copies registry
        (a few rows, no scan of the events); None if there are too many to list."""
        query = copies.candidate_ids(
            self.database, filters.start_ms, filters.end_ms, limit=analytics.MAX_DUPLICATES + 1
        )
        ids = [row[0] for row in self._rows(query)]
        return ids if len(ids) <= analytics.MAX_DUPLICATES else None

    def overview(self, *, now_ms: int) -> Overview:
        """All-time totals from the daily rollup, corrected for stored copies (see `rollups`)."""
        recent_ms = now_ms - 5 * MINUTE_MS
        listed = copies.candidate_ids(self.database, None, None, limit=MAX_IDS + 1)
        ids = [row[0] for row in self._rows(listed)]
        if len(ids) > MAX_IDS:
            return self._raw_overview(recent_ms)
        [(events, users, sessions, first, last)] = self._rows(rollups.totals(self.database))
        if not events:
            return Overview(0, 0, 0, None, None, 0)
        extra, copy_last, copy_recent = 0, None, 0
        if ids:
            summary = rollups.copy_summary(self.database, recent_ms=recent_ms)
            [(extra, copy_last, copy_recent)] = self._rows(summary)
        # The last event is in the rollup's last hour, unless only copies lie there (then look further).
        since = min(last // HOUR_MS * HOUR_MS, recent_ms)
        [(rows, tail_last, recent)] = self._rows(rollups.tail(self.database, ids, since_ms=since, recent_ms=recent_ms))
        if not rows:
            everything = rollups.tail(self.database, ids, since_ms=None, recent_ms=recent_ms)
            [(rows, tail_last, recent)] = self._rows(everything)
        last = max(t for t in (tail_last if rows else None, copy_last) if t is not None)
        return Overview(
            total_events=events - extra,
            unique_users=users,
            unique_sessions=sessions,
            first_event_at=format_ms(first),
            last_event_at=format_ms(last),
            events_last_5m=recent + copy_recent,
        )

    def _raw_overview(self, recent_ms: int) -> Overview:
        """The overview from the raw rows (more copies than `MAX_IDS`: slower, same answer)."""
        query = analytics.overview(self.database, self.duplicates(Filter()), recent_ms=recent_ms)
        [(events, users, sessions, first, last, recent)] = self._rows(query)
        return Overview(
            total_events=events,
            unique_users=users,
            unique_sessions=sessions,
            first_event_at=format_ms(first) if events else None,
            last_event_at=format_ms(last) if events else None,
            events_last_5m=recent,
        )

    def timeseries(
        self, filters: Filter, *, interval: str, group_by: str | None = None, top: int = 5
    ) -> Timeseries:
        """Events and users per bucket from filters.start_ms to filters.end_ms, zeros included."""
        assert filters.start_ms is not None and filters.end_ms is not None
        if interval != "minute" and (copy_rows := self._copy_rows(filters, group_by)) is not None:
            hourly = self._hourly_timeseries(filters, copy_rows, interval=interval, group_by=group_by, top=top)
            if hourly is not None:
                return hourly
        scoped = analytics.dimension_filter(group_by, filters)
        duplicates = self.duplicates(scoped)
        names: list[str] = []
        if group_by is not None:
            names = [row.value for row in self._breakdown(filters, duplicates, by=group_by, limit=top)]
        query = analytics.timeseries(
            self.database,
            scoped,
            duplicates,
            step_ms=INTERVALS[interval],
            origin_ms=bucket_origin(interval),
            group_by=group_by,
            top=names,
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

    def _breakdown(
        self, filters: Filter, duplicates: list[str] | None, *, by: str, limit: int
    ) -> list[BreakdownRow]:
        query = analytics.breakdown(
            self.database, analytics.dimension_filter(by, filters), duplicates, by=by, limit=limit
        )
        return [BreakdownRow(value, events, users) for value, events, users in self._rows(query)]

    def _copy_rows(self, filters: Filter, by: str | None) -> list[tuple[Any, ...]] | None:
        """The copied ids' rows in range (event_id, ms, value) when the hourly rollup covers the
        query: its filters and dimension are event type or channel, a bounded range, the project
        has no alias links (the raw path merges identities), few copies. None: it does not."""
        covered = filters._replace(event_type=None, channel=None) == Filter(filters.start_ms, filters.end_ms)
        if not covered or by not in (None, *rollups.HOURLY_DIMENSIONS):
            return None
        if filters.start_ms is None or filters.end_ms is None:
            return None
        if self._rows(rollups.has_links(self.database)) != [(0,)]:
            return None
        ids = self.duplicates(filters)
        if ids is None:
            return None
        if not ids:
            return []
        query = rollups.copy_rows(
            self.database, start_ms=filters.start_ms, end_ms=filters.end_ms, equals=_equals(filters), by=by, ids=ids
        )
        return self._rows(query)

    @staticmethod
    def _extra_rows(
        copy_rows: list[tuple[Any, ...]], *, step_ms: int, origin_ms: int, start_ms: int, end_ms: int
    ) -> Corrections | None:
        """What the hourly rollup needs to answer exactly, from the copied ids' rows in range.

        Each id counts once, at its earliest row. A later row in another bucket (or value) would
        add its user there: that bucket is read from the raw rows (`raw_buckets`), which skip
        every later row (`skipped`). Rows the rollup's hours count beyond each id's earliest,
        and copies identical to it in time, are subtracted (`extra`). None: a copy has the
        earliest time but another value (the raw rows answer).
        """

        def bucket(ms: int) -> int:
            return (ms - origin_ms) // step_ms * step_ms + origin_ms

        by_id: dict[str, list[tuple[int, str]]] = {}
        for event_id, ms, value in copy_rows:
            by_id.setdefault(event_id, []).append((ms, value))
        raw_buckets: set[int] = set()
        for rows in by_id.values():
            rows.sort()
            first_ms, first_value = rows[0]
            for ms, value in rows[1:]:
                if (bucket(ms), value) != (bucket(first_ms), first_value):
                    if ms == first_ms:
                        return None
                    raw_buckets.add(bucket(ms))
        inner_start, inner_end = -(-start_ms // HOUR_MS) * HOUR_MS, end_ms // HOUR_MS * HOUR_MS
        extra: dict[tuple[int, str], int] = {}
        skipped = []
        for event_id, rows in by_id.items():
            first_ms = rows[0][0]
            for ms, value in rows[1:]:
                in_rollup = inner_start <= ms < inner_end and bucket(ms) not in raw_buckets
                if in_rollup or ms == first_ms:
                    extra[bucket(ms), value] = extra.get((bucket(ms), value), 0) + 1
                if ms > first_ms:
                    skipped.append(f"{event_id}@{ms}")
        return Corrections([(b, v, n) for (b, v), n in extra.items()], sorted(raw_buckets), skipped)

    def _hourly_rows(
        self, filters: Filter, fixes: Corrections, *, by: str | None, step_ms: int, origin_ms: int,
        top: list[str] | None = None, users: bool = True,
    ) -> list[tuple[Any, ...]]:
        assert filters.start_ms is not None and filters.end_ms is not None
        query = rollups.hourly_counts(
            self.database, start_ms=filters.start_ms, end_ms=filters.end_ms, equals=_equals(filters), by=by,
            step_ms=step_ms, origin_ms=origin_ms, extra_rows=fixes.extra, top=top, users=users,
            raw_buckets=fixes.raw_buckets, skipped=fixes.skipped,
        )
        return self._rows(query)

    def _hourly_breakdown(
        self, filters: Filter, copy_rows: list[tuple[Any, ...]], *, by: str, limit: int, users: bool = True
    ) -> list[BreakdownRow] | None:
        """The breakdown from the hourly rollup (one bucket: the range); None: the raw rows answer."""
        assert filters.start_ms is not None and filters.end_ms is not None
        step, origin = filters.end_ms - filters.start_ms, filters.start_ms
        fixes = self._extra_rows(
            copy_rows, step_ms=step, origin_ms=origin, start_ms=filters.start_ms, end_ms=filters.end_ms
        )
        if fixes is None or len(fixes.raw_buckets) > MAX_RAW_BUCKETS:
            return None
        rows = self._hourly_rows(filters, fixes, by=by, step_ms=step, origin_ms=origin, users=users)
        ordered = sorted(rows, key=lambda row: (-row[3], row[2]))[:limit]
        return [BreakdownRow(value, events, uniques) for _, _, value, events, uniques in ordered]

    def _hourly_timeseries(
        self, filters: Filter, copy_rows: list[tuple[Any, ...]], *, interval: str, group_by: str | None, top: int
    ) -> Timeseries | None:
        """The timeseries from the hourly rollup; None (the raw rows answer) when copies cross too many buckets."""
        assert filters.start_ms is not None and filters.end_ms is not None
        step, origin = INTERVALS[interval], bucket_origin(interval)
        fixes = self._extra_rows(
            copy_rows, step_ms=step, origin_ms=origin, start_ms=filters.start_ms, end_ms=filters.end_ms
        )
        if fixes is None or len(fixes.raw_buckets) > MAX_RAW_BUCKETS:
            return None
        names: list[str] = []
        if group_by is not None:
            ranked = self._hourly_breakdown(filters, copy_rows, by=group_by, limit=top, users=False)
            if ranked is None:
                return None
            names = [row.value for row in ranked]
        rows = self._hourly_rows(
            filters, fixes, by=group_by, step_ms=step, origin_ms=origin, top=None if group_by is None else names
        )
        return self._series(filters, rows, interval=interval, group_by=group_by, names=names)

    def breakdown(self, filters: Filter, *, by: str, limit: int) -> Breakdown:
        if (copy_rows := self._copy_rows(filters, by)) is not None:
            hourly = self._hourly_breakdown(filters, copy_rows, by=by, limit=limit)
            if hourly is not None:
                return Breakdown(dimension=by, rows=hourly)
        duplicates = self.duplicates(analytics.dimension_filter(by, filters))
        return Breakdown(dimension=by, rows=self._breakdown(filters, duplicates, by=by, limit=limit))

    def top_pages(self, filters: Filter, *, limit: int) -> TopPages:
        """Page views (page_view events that carry a url) per url, with unique visitors."""
        pages = filters._replace(event_type="page_view", with_url=True)
        rows = self._breakdown(pages, self.duplicates(pages), by="url", limit=limit)
        return TopPages(rows=[PageRow(url=r.value, views=r.events, visitors=r.users) for r in rows])

    def active_users(self, *, now_ms: int, window_minutes: int, day_ms: int) -> ActiveUsers:
        """Users in the last `window_minutes`; DAU/WAU/MAU of the UTC day starting at `day_ms`."""
        recent = Filter(start_ms=now_ms - window_minutes * MINUTE_MS, end_ms=now_ms + 1)
        [(active_now,)] = self._rows(analytics.unique_users(self.database, recent, self.duplicates(recent)))
        dau, wau, mau = self._active_users(day_ms=day_ms, week_ms=day_ms - 6 * DAY_MS)
        return ActiveUsers(
            active_now=active_now,
            window_minutes=window_minutes,
            date=format_ms(day_ms)[:10],
            dau=dau,
            wau=wau,
            mau=mau,
        )

    def _active_users(self, *, day_ms: int, week_ms: int) -> tuple[int, int, int]:
        """DAU, WAU, MAU from the daily rollup, except a window a copy would add a user to (it lies
        there, its event's earliest copy before: see `rollups`): that window's answers come from
        its raw rows without those copies (the week's: ~2M rows at 10M events, not the month's)."""
        start_ms, end_ms = day_ms - 29 * DAY_MS, day_ms + DAY_MS
        [(dau, wau, mau)] = self._rows(
            rollups.active_users(self.database, start_ms=start_ms, end_ms=end_ms, day_ms=day_ms, week_ms=week_ms)
        )
        for bound in (week_ms, day_ms):  # the week's raw rows answer for the day too
            query = rollups.crossing_ids(self.database, start_ms=start_ms, end_ms=end_ms, bound=bound)
            crossing = tuple(event_id for (event_id,) in self._rows(query))
            if not crossing:
                continue
            window = Filter(start_ms=bound, end_ms=end_ms, without_ids=crossing)
            query = analytics.active_users(
                self.database, window, self.duplicates(window), day_ms=day_ms, week_ms=week_ms
            )
            [(raw_dau, raw_wau, _)] = self._rows(query)
            return raw_dau, raw_wau if bound == week_ms else wau, mau
        return dau, wau, mau

    def sessions(self, filters: Filter) -> Sessions:
        with_session = filters._replace(with_session=True)
        query = analytics.sessions(self.database, with_session, self.duplicates(with_session))
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
        query = analytics.funnel(
            self.database, scoped, self.duplicates(scoped), steps=steps, window_ms=window_seconds * 1000
        )
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
        query = analytics.retention(
            self.database, filters, self.duplicates(filters), period=period, periods=periods
        )
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


def _equals(filters: Filter) -> dict[str, str]:
    """The column = value filters the hourly rollup keeps."""
    pairs = (("event_type", filters.event_type), ("channel", filters.channel))
    return {column: value for column, value in pairs if value is not None}


def _day_ms(date: str) -> int:
    """Epoch ms of a YYYY-MM-DD date at 00:00 UTC."""
    return int(datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
