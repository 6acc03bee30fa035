"""The daily rollup answers overview and DAU/WAU/MAU exactly as the raw rows do, copies included.

Each test compares the rollup's answer with the raw path's (`analytics` SQL over every row,
each event at its earliest copy) on data built so that a rollup counting stored rows
naively would differ: copies in the last hour and the last 5 minutes, a copy that is the
latest row, a copy that moves its user into another day.
"""

from __future__ import annotations

from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore, analytics
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import DAY_MS, MINUTE_MS, Analytics
from streamtrack.store.scoped import project_store
from streamtrack.timestamps import now_ms

HOUR = 60 * MINUTE_MS


def event(event_id: str, at: int, user: str, session: str = "") -> Event:
    return Event(
        event_id=event_id, event_type="page_view", timestamp=at, received_at=at, user_id=user, session_id=session
    )


def raw_active_users(reader: Analytics, day_ms: int) -> tuple[int, int, int]:
    month = Filter(start_ms=day_ms - 29 * DAY_MS, end_ms=day_ms + DAY_MS)
    query = analytics.active_users(
        reader.database, month, reader.duplicates(month), day_ms=day_ms, week_ms=day_ms - 6 * DAY_MS
    )
    [(dau, wau, mau)] = reader.store.backend.query(query.sql, query.params)
    return dau, wau, mau


def test_an_empty_store(clean_store: EventStore) -> None:
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    now = now_ms()
    assert reader.overview(now_ms=now) == reader._raw_overview(now - 5 * MINUTE_MS)
    assert reader.overview(now_ms=now).total_events == 0


def test_overview_counts_copies_once_at_their_earliest_copy(clean_store: EventStore) -> None:
    now = now_ms()
    clean_store.insert([event(f"old-{i}", now - 3 * DAY_MS + i, f"u{i % 4}", f"s{i % 5}") for i in range(20)])
    clean_store.insert([
        event("a", now - 2 * HOUR, "u1", "s1"),
        event("b", now - 10 * MINUTE_MS, "u2"),  # the last event: its copy below is later
        event("c", now - 20 * MINUTE_MS, "u9", "s9"),
    ])
    clean_store.insert([
        event("a", now - 1 * MINUTE_MS, "u1", "s1"),  # a copy in the last 5 minutes: not recent, not last
        event("b", now - 30_000, "u2"),  # the latest row of all, a copy
        event("old-3", now - 2 * MINUTE_MS, "u3", "s3"),
        event("c", now - 20 * MINUTE_MS, "u9", "s9"),  # identical copy
    ])
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    overview = reader.overview(now_ms=now)
    assert overview == reader._raw_overview(now - 5 * MINUTE_MS)
    assert (overview.total_events, overview.unique_users, overview.unique_sessions) == (23, 5, 6)
    assert overview.events_last_5m == 0
    assert overview.last_event_at == Analytics(project_store(clean_store, DEFAULT_PROJECT)).overview(now_ms=now).last_event_at
    # Only copies in the last hour: the last event is found further back.
    clean_store.insert([event("c", now + 30 * MINUTE_MS, "u9")])
    assert reader.overview(now_ms=now) == reader._raw_overview(now - 5 * MINUTE_MS)
    clean_store.insert([event("new", now - MINUTE_MS, "u7")])
    overview = reader.overview(now_ms=now)
    assert overview == reader._raw_overview(now - 5 * MINUTE_MS)
    assert (overview.total_events, overview.events_last_5m) == (24, 1)


def test_a_replay_dropped_by_its_token_does_not_reach_the_rollup(clean_store: EventStore) -> None:
    batch = [event(f"e{i}", 1_767_600_000_000 + i, "u") for i in range(5)]
    clean_store.insert(batch, dedup_token="t-1")
    clean_store.insert(batch, dedup_token="t-1")
    [(rows,)] = clean_store.backend.query(f"SELECT sum(events) FROM `{clean_store.database}`.events_daily")
    assert rows == 5 and Analytics(project_store(clean_store, DEFAULT_PROJECT)).overview(now_ms=now_ms()).total_events == 5


def test_active_users_from_the_rollup_and_around_a_copy_crossing_a_day(clean_store: EventStore) -> None:
    day = 1_767_571_200_000  # 2026-01-05T00:00:00Z
    clean_store.insert([event(f"e{d}-{u}", day - d * DAY_MS + HOUR, f"u{u}") for d in range(40) for u in range(d % 4)])
    clean_store.insert([event("e1-0", day - DAY_MS + 2 * HOUR, "u0")])  # a copy within its day
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    for date in (day, day - DAY_MS, day - 20 * DAY_MS):
        rollup = reader.active_users(now_ms=day, window_minutes=5, day_ms=date)
        assert (rollup.dau, rollup.wau, rollup.mau) == raw_active_users(reader, date)
    before = reader.active_users(now_ms=day, window_minutes=5, day_ms=day + DAY_MS)
    assert (before.dau, before.wau, before.mau) == (0, 3, 3)  # u0, u1, u2
    # u9's only event of day+1 is a copy of one from day: not active on day+1 (the raw path answers).
    clean_store.insert([event("x", day + HOUR, "u9")])
    clean_store.insert([event("x", day + DAY_MS + HOUR, "u9")])
    after = reader.active_users(now_ms=day, window_minutes=5, day_ms=day + DAY_MS)
    assert (after.dau, after.wau, after.mau) == (0, 4, 4) == raw_active_users(reader, day + DAY_MS)
    # u8's only event of the week is a copy of one from before it: in MAU, not in WAU (the week's
    # raw rows answer, without that copy).
    clean_store.insert([event("y", day - 9 * DAY_MS, "u8")])
    clean_store.insert([event("y", day - 2 * DAY_MS, "u8")])
    after = reader.active_users(now_ms=day, window_minutes=5, day_ms=day + DAY_MS)
    assert (after.dau, after.wau, after.mau) == (0, 4, 5) == raw_active_users(reader, day + DAY_MS)
    # and a copy crossing both the week's and the day's start
    clean_store.insert([event("z", day - 8 * DAY_MS, "u7")])
    clean_store.insert([event("z", day + DAY_MS + 2 * HOUR, "u7")])
    after = reader.active_users(now_ms=day, window_minutes=5, day_ms=day + DAY_MS)
    assert (after.dau, after.wau, after.mau) == (0, 4, 6) == raw_active_users(reader, day + DAY_MS)


def test_migrate_rebuilds_the_rollup_for_data_stored_before_it(clean_store: EventStore) -> None:
    now = now_ms()
    clean_store.insert([event(f"e{i}", now - i * HOUR, f"u{i % 3}") for i in range(30)])
    clean_store.insert([event("e1", now - 90 * MINUTE_MS, "u1")])
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    expected = reader.overview(now_ms=now)
    db = f"`{clean_store.database}`"
    for table in ("events_daily_mv", "events_daily"):  # as before the rollup existed
        clean_store.backend.command(f"DROP TABLE {db}.`{table}` SYNC")
    clean_store.migrate()
    assert reader.overview(now_ms=now) == expected == reader._raw_overview(now - 5 * MINUTE_MS)
    assert expected.total_events == 30
    clean_store.migrate()  # not rebuilt, not doubled
    assert reader.overview(now_ms=now) == expected
