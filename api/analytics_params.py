"""Parsing and checking the query parameters of /analytics/*: every limit lives here.

Each function turns raw query text into a value the reader accepts, or raises
InvalidParameter naming the parameter and the rule, so a bad request is a 400 that says
what to change, never a 500 from ClickHouse.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from streamtrack.api.activities import MAX_FILTER_CHARS, _time_param
from streamtrack.errors import InvalidParameter
from streamtrack.store.analytics import DIMENSIONS, Filter
from streamtrack.store.analytics_reader import DAY_MS, INTERVALS, bucket_starts

DEFAULT_RANGE_MS = 7 * DAY_MS
MAX_RANGE_DAYS = 400
MAX_BUCKETS = 2000
AUTO_MAX_BUCKETS = 300
"""`interval=auto` picks the finest interval giving at most this many buckets."""
MAX_LIMIT = 1000
MAX_TOP = 50
MAX_PROPERTY_FILTERS = 10
MAX_FUNNEL_STEPS = 10
MAX_FUNNEL_WINDOW_S = 90 * 86_400
MAX_WINDOW_MINUTES = 1440
MAX_PERIODS = {"day": 90, "week": 52}
DIMENSION_NAMES = (*DIMENSIONS, "property:KEY")


def time_range(
    from_: str | None, to: str | None, *, now_ms: int, default_ms: int = DEFAULT_RANGE_MS
) -> tuple[int, int]:
    """[from, to) in epoch ms; `to` defaults to now, `from` to `default_ms` before `to`."""
    end = _time_param(to, "to")
    end = now_ms if end is None else end
    start = _time_param(from_, "from")
    start = end - default_ms if start is None else start
    if start >= end:
        raise InvalidParameter("'from' must be earlier than 'to'", field="from")
    if end - start > MAX_RANGE_DAYS * DAY_MS:
        raise InvalidParameter(
            f"the range from 'from' to 'to' is longer than {MAX_RANGE_DAYS} days", field="from"
        )
    return start, end


def text(value: str | None, name: str) -> str | None:
    """An equality filter: None when absent or empty, at most MAX_FILTER_CHARS characters."""
    if value is not None and len(value) > MAX_FILTER_CHARS:
        raise InvalidParameter(f"is longer than {MAX_FILTER_CHARS} characters", field=name)
    return value or None


def properties(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """`property=key:value` filters (repeatable): the first ':' separates key and value."""
    values = values or []
    if len(values) > MAX_PROPERTY_FILTERS:
        raise InvalidParameter(f"at most {MAX_PROPERTY_FILTERS} property filters", field="property")
    pairs = []
    for raw in values:
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise InvalidParameter(f"expected key:value (e.g. plan:pro), got {raw[:40]!r}", field="property")
        pairs.append((text(key, "property") or "", text(value, "property") or ""))
    return tuple(pairs)


def filters(
    start_ms: int,
    end_ms: int,
    *,
    event_type: str | None = None,
    user_id: str | None = None,
    url: str | None = None,
    channel: str | None = None,
    property_: list[str] | None = None,
) -> Filter:
    return Filter(
        start_ms=start_ms,
        end_ms=end_ms,
        event_type=text(event_type, "event_type"),
        user=text(user_id, "user_id"),
        url=text(url, "url"),
        channel=text(channel, "channel"),
        properties=properties(property_),
    )


def dimension(value: str | None, name: str) -> str:
    """event_type, url, referrer, channel, campaign, or property:KEY."""
    if value in DIMENSIONS:
        return value
    if value and value.startswith("property:") and len(value) > len("property:"):
        text(value.removeprefix("property:"), name)
        return value
    raise InvalidParameter(
        f"expected one of {', '.join(DIMENSION_NAMES)}, got {(value or '')[:40]!r}", field=name
    )


def interval(value: str, start_ms: int, end_ms: int) -> str:
    """minute/hour/day/week, at most MAX_BUCKETS buckets; auto: the finest with ≤ AUTO_MAX_BUCKETS."""
    if value == "auto":
        for name in INTERVALS:
            if len(bucket_starts(start_ms, end_ms, name)) <= AUTO_MAX_BUCKETS:
                return name
        return "week"
    if value not in INTERVALS:
        raise InvalidParameter(f"expected auto, {', '.join(INTERVALS)}, got {value[:40]!r}", field="interval")
    buckets = (end_ms - start_ms) // INTERVALS[value]
    if buckets > MAX_BUCKETS:
        raise InvalidParameter(
            f"{value} buckets over this range would be more than {MAX_BUCKETS}; use a coarser interval or a shorter range",
            field="interval",
        )
    return value


def funnel_steps(steps: list[str] | None) -> list[str]:
    steps = steps or []
    if not 2 <= len(steps) <= MAX_FUNNEL_STEPS:
        raise InvalidParameter(
            f"give 2 to {MAX_FUNNEL_STEPS} steps (event types, in order), got {len(steps)}", field="steps"
        )
    checked = [text(step, "steps") for step in steps]
    if any(step is None for step in checked):
        raise InvalidParameter("a step is empty; give an event type", field="steps")
    return [step for step in checked if step is not None]


def day(value: str | None, *, now_ms: int) -> int:
    """Epoch ms of a YYYY-MM-DD day at 00:00 UTC; default: today."""
    if not value:
        return now_ms // DAY_MS * DAY_MS
    try:
        parsed = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None or not 2000 <= parsed.year < 2299:
        raise InvalidParameter(
            f"expected a date YYYY-MM-DD from 2000 to 2298, got {value[:40]!r}", field="date"
        )
    return int(datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC).timestamp() * 1000)


def period(value: str, periods: int) -> str:
    if value not in MAX_PERIODS:
        raise InvalidParameter(f"expected day or week, got {value[:40]!r}", field="period")
    if not 1 <= periods <= MAX_PERIODS[value]:
        raise InvalidParameter(
            f"periods must be 1 to {MAX_PERIODS[value]} for period={value}", field="periods"
        )
    return value


def retention_range(
    from_: str | None, to: str | None, *, period_name: str, periods: int, now_ms: int
) -> tuple[int, int]:
    """Default range: the last `periods` periods, the current one included."""
    end = _time_param(to, "to")
    end = now_ms if end is None else end
    step = INTERVALS[period_name]
    current = bucket_starts(end - 1, end, period_name)[0]
    return time_range(from_, to, now_ms=now_ms, default_ms=end - (current - (periods - 1) * step))
