"""The hourly rollup answers timeseries and breakdowns by event type or channel as the raw rows do.

Each test compares the rollup's answer with the raw path's (the same reader with the rollup
turned off) on data built to trip a rollup that counts stored rows naively: copies within an
hour, crossing an hour and the range's start, bots, another project, partial hours at both
ends of the range, an erased user, a rollup rebuilt by migrate. Answers must be equal (a
copy crossing a bucket sends the query to the raw rows: it would add its user there).
"""

from __future__ import annotations

from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import DAY_MS, HOUR_MS, MINUTE_MS, Analytics, Breakdown, Timeseries
from streamtrack.store.privacy import erase_user
from streamtrack.store.scoped import project_store

DAY = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday
TYPES = ("page_view", "click", "purchase")
CHANNELS = ("web", "email")


class RawAnalytics(Analytics):
    """The reader with the hourly rollup turned off: the reference answers."""

    def _copy_rows(self, filters: Filter, by: str | None) -> list[tuple[object, ...]] | None:
        return None


def event(event_id: str, at: int, user: str, i: int, **fields: object) -> Event:
    return Event(
        event_id=event_id, event_type=TYPES[i % 3], channel=CHANNELS[i % 2], timestamp=at, received_at=at,
        user_id=user, **fields,  # type: ignore[arg-type]
    )


def seed(store: EventStore) -> None:
    store.insert([event(f"e{i}", DAY + i * 7 * MINUTE_MS, f"u{i % 5}", i) for i in range(300)])
    store.insert([event(f"b{i}", DAY + i * HOUR_MS, f"bot{i}", i, is_bot=True) for i in range(20)])
    store.insert([event(f"e{i}", DAY + i * 11 * MINUTE_MS, f"u{i}", i, project_id="other") for i in range(100)])
    store.insert([
        event("e10", DAY + 10 * 7 * MINUTE_MS + MINUTE_MS, "u0", 10),  # a copy in the same hour
        event("e20", DAY + 20 * 7 * MINUTE_MS + 3 * HOUR_MS, "u0", 20),  # a copy three hours later
        event("e20", DAY + 20 * 7 * MINUTE_MS + 5 * HOUR_MS, "u0", 20),  # and another
        event("e3", DAY + 3 * 7 * MINUTE_MS, "u3", 3),  # an identical copy
        event("e1", DAY + 2 * HOUR_MS + 30 * MINUTE_MS, "u1", 1),  # its event lies before the range below
    ])


def views(reader: Analytics, filters: Filter) -> list[Timeseries | Breakdown]:
    answers: list[Timeseries | Breakdown] = []
    for interval in ("hour", "day"):
        for group_by in (None, "event_type", "channel"):
            answers.append(reader.timeseries(filters, interval=interval, group_by=group_by, top=2))
    answers += [reader.breakdown(filters, by=by, limit=10) for by in ("event_type", "channel")]
    return answers


RANGES = (
    Filter(start_ms=DAY - HOUR_MS, end_ms=DAY + 2 * DAY_MS),  # whole hours
    Filter(start_ms=DAY + 2 * HOUR_MS + 17 * MINUTE_MS, end_ms=DAY + 31 * HOUR_MS + 5 * MINUTE_MS),  # partial ends
    Filter(start_ms=DAY + 2 * HOUR_MS + 17 * MINUTE_MS, end_ms=DAY + 2 * HOUR_MS + 50 * MINUTE_MS),  # within an hour
    Filter(start_ms=DAY, end_ms=DAY + DAY_MS, event_type="click", channel="email"),
    Filter(start_ms=DAY, end_ms=DAY + DAY_MS, channel="web"),
)


def test_rollup_answers_equal_the_raw_answers(clean_store: EventStore) -> None:
    seed(clean_store)
    store = project_store(clean_store, DEFAULT_PROJECT)
    rollup, raw = Analytics(store), RawAnalytics(store)
    for filters in RANGES:
        assert rollup._copy_rows(filters, "channel") is not None  # the rollup covers these
        assert views(rollup, filters) == views(raw, filters)
    # Which path answered: per day and per range the rollup (the copies' extra rows subtracted);
    # per hour the raw rows, because e20's and e1's copies lie in later hours than their events.
    copy_rows = rollup._copy_rows(RANGES[0], None)
    assert copy_rows is not None
    span = {"start_ms": DAY - HOUR_MS, "end_ms": DAY + 2 * DAY_MS}
    per_day = Analytics._extra_rows(copy_rows, step_ms=DAY_MS, origin_ms=0, **span)
    assert per_day is not None and (per_day.extra, per_day.raw_buckets) == ([(DAY, "", 5)], [])
    per_hour = Analytics._extra_rows(copy_rows, step_ms=HOUR_MS, origin_ms=0, **span)
    assert per_hour is not None and sorted(per_hour.extra) == [(DAY, "", 1), (DAY + HOUR_MS, "", 1)]  # e3, e10
    assert per_hour.raw_buckets == [DAY + 2 * HOUR_MS, DAY + 5 * HOUR_MS, DAY + 7 * HOUR_MS]  # e1, e20 x2
    assert len(per_hour.skipped) == 4
    points = rollup.timeseries(Filter(start_ms=DAY, end_ms=DAY + 2 * DAY_MS), interval="day").series[0].points
    # no copy counted twice, no bot, nothing of the other project
    assert [(p.events, p.users) for p in points] == [(206, 5), (94, 5)]


def test_merges_that_collapse_identical_copies_change_no_answer(clean_store: EventStore) -> None:
    """A merge of `events` keeps one of two identical copies (same sorting key), while the rollup
    counted both as inserted: the extra rows subtracted must be counted as inserted too (this
    counted e3 twice per day, and identical copies in general, before the fix)."""
    seed(clean_store)
    store = project_store(clean_store, DEFAULT_PROJECT)
    rollup, raw = Analytics(store), RawAnalytics(store)
    before = [views(rollup, filters) for filters in RANGES]
    clean_store.backend.command(f"OPTIMIZE TABLE `{clean_store.database}`.events FINAL")  # what merges do in time
    assert [views(rollup, filters) for filters in RANGES] == before
    assert [views(raw, filters) for filters in RANGES] == before
    points = rollup.timeseries(Filter(start_ms=DAY, end_ms=DAY + 2 * DAY_MS), interval="day").series[0].points
    assert [(p.events, p.users) for p in points] == [(206, 5), (94, 5)]


def test_a_copy_crossing_a_bucket_sends_that_bucket_to_the_raw_rows(clean_store: EventStore) -> None:
    clean_store.insert([event("a", DAY + 10 * MINUTE_MS, "u1", 0), event("b", DAY + HOUR_MS + 5 * MINUTE_MS, "u2", 0)])
    clean_store.insert([event("a", DAY + 20 * MINUTE_MS, "u1", 0)])  # a retry within the hour
    store = project_store(clean_store, DEFAULT_PROJECT)
    reader, raw = Analytics(store), RawAnalytics(store)
    hours = Filter(start_ms=DAY, end_ms=DAY + 2 * HOUR_MS)
    span = {"start_ms": DAY, "end_ms": DAY + 2 * HOUR_MS}
    copy_rows = reader._copy_rows(hours, None)
    assert copy_rows is not None
    assert reader._extra_rows(copy_rows, step_ms=HOUR_MS, origin_ms=0, **span) == ([(DAY, "", 1)], [], [f"a@{DAY + 20 * MINUTE_MS}"])
    assert [(p.events, p.users) for p in reader.timeseries(hours, interval="hour").series[0].points] == [(1, 1), (1, 1)]
    clean_store.insert([event("a", DAY + HOUR_MS + 10 * MINUTE_MS, "u1", 0)])  # a retry stamped an hour later
    copy_rows = reader._copy_rows(hours, None)
    assert copy_rows is not None
    fixes = reader._extra_rows(copy_rows, step_ms=HOUR_MS, origin_ms=0, **span)
    assert fixes is not None and fixes.raw_buckets == [DAY + HOUR_MS]
    # u1 is not active in the copy's hour (the hour's rollup state says so; that hour is read raw)
    answer = reader.timeseries(hours, interval="hour")
    assert [(p.events, p.users) for p in answer.series[0].points] == [(1, 1), (1, 1)]
    assert answer == raw.timeseries(hours, interval="hour")
    # one bucket, the range: nothing crosses it
    assert reader.breakdown(hours, by="event_type", limit=5) == raw.breakdown(hours, by="event_type", limit=5)
    fixes = reader._extra_rows(copy_rows, step_ms=2 * HOUR_MS, origin_ms=DAY, **span)
    assert fixes is not None and (fixes.extra, fixes.raw_buckets) == ([(DAY, "", 2)], [])


def test_the_raw_rows_answer_what_the_rollup_does_not_cover(clean_store: EventStore) -> None:
    seed(clean_store)
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    week = Filter(start_ms=DAY, end_ms=DAY + 7 * DAY_MS)
    assert reader._copy_rows(week, "url") is None
    assert reader._copy_rows(week._replace(user="u1"), None) is None
    assert reader._copy_rows(week._replace(properties=(("plan", "pro"),)), "channel") is None
    assert reader._copy_rows(week, None) is not None
    clean_store.backend.command(
        f"INSERT INTO `{clean_store.database}`.aliases (project_id, previous_id, user_id, timestamp)"
        f" VALUES ('{DEFAULT_PROJECT}', 'u2', 'u1', now64(3))"
    )
    assert reader._copy_rows(week, None) is None  # identities merged: the raw path answers


def test_erase_and_migrate_rebuild_the_hourly_rollup(clean_store: EventStore) -> None:
    seed(clean_store)
    store = project_store(clean_store, DEFAULT_PROJECT)
    day = Filter(start_ms=DAY, end_ms=DAY + 2 * DAY_MS)
    assert erase_user(clean_store, DEFAULT_PROJECT, "u0") > 0
    after = Analytics(store).timeseries(day, interval="day", group_by="event_type")
    assert after == RawAnalytics(store).timeseries(day, interval="day", group_by="event_type")
    assert sum(p.events for s in after.series for p in s.points) == 240 and after.series[0].points[0].users == 4
    db = f"`{clean_store.database}`"
    for table in ("events_hourly_mv", "events_hourly"):  # as before the hourly rollup existed
        clean_store.backend.command(f"DROP TABLE {db}.`{table}` SYNC")
    clean_store.migrate()
    assert Analytics(store).timeseries(day, interval="day", group_by="event_type") == after
    clean_store.migrate()  # not rebuilt, not doubled
    by_channel = Analytics(store).breakdown(day, by="channel", limit=5)
    assert by_channel == RawAnalytics(store).breakdown(day, by="channel", limit=5)
