"""The copies registry (`streamtrack.store.copies`): every stored copy is listed at write time.

The analytics take their deduplication candidates from it instead of scanning the events,
so a copy missing from it would be counted twice: these tests make copies in each way a
write can (two inserts, one batch, two racing threads, data stored before the registry)
and check it lists exactly those, and that a token-deduplicated replay is not one.
"""

from __future__ import annotations

import threading
import uuid

from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.store import EventStore
from streamtrack.store.codec import events_to_arrow
from streamtrack.store.schema import EVENTS_TABLE
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import Analytics
from streamtrack.store.scoped import project_store
from tests.fixtures.pipeline import Pipeline

DAY = 86_400_000
T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z


def event(event_id: str, *, at: int = T0, user: str = "u1") -> Event:
    return Event(event_id=event_id, event_type="page_view", timestamp=at, received_at=at, user_id=user)


def registered(store: EventStore) -> dict[str, tuple[int, int, int]]:
    """event_id -> (first ms, last ms, rows) as the registry lists it (latest record per id)."""
    rows = store.backend.query(
        f"SELECT event_id, toUnixTimestamp64Milli(min(first)), toUnixTimestamp64Milli(max(last)), max(rows)"
        f" FROM `{store.database}`.event_copies GROUP BY event_id"
    )
    return {event_id: (first, last, rows) for event_id, first, last, rows in rows}


def copy_rows(store: EventStore) -> dict[str, list[int]]:
    """event_id -> the times of its rows in `event_copy_rows` (distinct: a row recorded twice is harmless)."""
    rows = store.backend.query(
        f"SELECT event_id, arraySort(groupUniqArray(toUnixTimestamp64Milli(timestamp)))"
        f" FROM `{store.database}`.event_copy_rows GROUP BY event_id"
    )
    return {event_id: list(times) for event_id, times in rows}


def test_a_copy_stored_by_two_inserts_is_recorded_with_the_span_of_its_times(clean_store: EventStore) -> None:
    clean_store.insert([event("a"), event("b")])
    assert registered(clean_store) == {}
    clean_store.insert([event("a", at=T0 + 90_000), event("c")])  # a retry stamped 90 s later
    assert registered(clean_store) == {"a": (T0, T0 + 90_000, 2)}
    assert copy_rows(clean_store) == {"a": [T0, T0 + 90_000]}  # every row of the copied id, no other
    clean_store.insert([event("a", at=T0 + 5)])  # a third copy: its row joins the others
    assert copy_rows(clean_store) == {"a": [T0, T0 + 5, T0 + 90_000]}


def test_a_repeat_within_one_batch_is_recorded(clean_store: EventStore) -> None:
    clean_store.insert([event("a"), event("a", at=T0 + 1)])
    assert registered(clean_store) == {"a": (T0, T0 + 1, 2)}


def test_a_replay_dropped_by_its_token_is_not_a_copy(clean_store: EventStore) -> None:
    batch = [event("a"), event("b")]
    clean_store.insert(batch, dedup_token="batch-1")
    clean_store.insert(batch, dedup_token="batch-1")
    assert clean_store.stats().rows == 2
    assert registered(clean_store) == {}
    assert Analytics(project_store(clean_store, DEFAULT_PROJECT)).duplicates(Filter()) == []


def test_racing_inserts_of_the_same_ids_are_recorded(clean_store: EventStore) -> None:
    """Whichever insert returns last looks the ids up after both are visible."""
    batches = [[event(f"id-{i}", at=T0 + n) for i in range(200)] for n in range(2)]
    barrier = threading.Barrier(2)

    def insert(batch: list[Event]) -> None:
        barrier.wait()
        clean_store.insert(batch)

    threads = [threading.Thread(target=insert, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(registered(clean_store)) == {f"id-{i}" for i in range(200)}
    assert copy_rows(clean_store) == {f"id-{i}": [T0, T0 + 1] for i in range(200)}


def test_migrate_backfills_the_registry_for_data_stored_before_it(clean_store: EventStore) -> None:
    clean_store.insert([event("a"), event("b")])
    clean_store.insert([event("a", at=T0 + 5)])
    db = f"`{clean_store.database}`"
    for table in ("event_ids_mv", "event_ids", "event_copies", "event_copy_rows"):  # as before the registry existed
        clean_store.backend.command(f"DROP TABLE {db}.`{table}` SYNC")
    clean_store.migrate()
    assert registered(clean_store) == {"a": (T0, T0 + 5, 2)}
    assert copy_rows(clean_store) == {"a": [T0, T0 + 5]}
    clean_store.migrate()  # not filled twice
    [(ids,)] = clean_store.backend.query(f"SELECT count() FROM {db}.event_ids")
    assert ids == 3 and registered(clean_store) == {"a": (T0, T0 + 5, 2)}
    clean_store.insert([event("b", at=T0 + DAY)])  # and kept up to date by inserts afterwards
    assert registered(clean_store)["b"] == (T0, T0 + DAY, 2)


def test_migrate_fills_the_copies_rows_of_a_registry_older_than_them(clean_store: EventStore) -> None:
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    clean_store.insert([event("a", user="u1"), event("b", user="u2")])
    clean_store.insert([event("a", at=T0 + 5, user="u1")])
    clean_store.backend.command(f"DROP TABLE `{clean_store.database}`.event_copy_rows SYNC")  # as before it existed
    clean_store.migrate()
    assert copy_rows(clean_store) == {"a": [T0, T0 + 5]}
    breakdown = reader.breakdown(Filter(start_ms=T0, end_ms=T0 + DAY), by="url", limit=10)  # reads the copies' rows
    assert [(row.events, row.users) for row in breakdown.rows] == [(2, 2)]


def test_the_analytics_take_their_candidates_from_the_registry_and_stay_exact(clean_store: EventStore) -> None:
    reader = Analytics(project_store(clean_store, DEFAULT_PROJECT))
    day = Filter(start_ms=T0 - DAY, end_ms=T0 + DAY)
    clean_store.insert([event(f"e{i}", at=T0 + i, user=f"u{i % 3}") for i in range(10)])
    assert reader.duplicates(day) == []  # no copies: the plain single-scan query
    assert reader.overview(now_ms=T0 + DAY).total_events == 10
    clean_store.insert([event("e1", at=T0 + 1), event("e2", at=T0 + 3 * DAY)])  # copies, one far off
    assert sorted(reader.duplicates(day) or []) == ["e1", "e2"]  # e2: only one copy in the day, harmless
    assert reader.duplicates(Filter(start_ms=T0 + 2 * DAY, end_ms=T0 + 4 * DAY)) == ["e2"]
    assert reader.duplicates(Filter(start_ms=T0 + 4 * DAY, end_ms=T0 + 5 * DAY)) == []
    overview = reader.overview(now_ms=T0 + DAY)
    assert (overview.total_events, overview.unique_users) == (10, 3)
    hourly = reader.timeseries(day, interval="day")
    assert sum(point.events for point in hourly.series[0].points) == 10


def test_a_copy_whose_insert_crashed_before_recording_it_is_recorded_by_the_replay(pipeline: Pipeline) -> None:
    """A worker that crashes between an insert that made a copy (it raced another worker) and the
    copies step: the replay finds the id stored and drops it, and records the copy then."""
    store = pipeline.store
    event_id = f"crash-{uuid.uuid4().hex[:8]}"
    for copy in (event(event_id), event(event_id, at=T0 + 90_000)):  # what the racing inserts left, unrecorded
        store.backend.insert_events(store.database, EVENTS_TABLE, events_to_arrow([copy]), None)
    assert event_id not in registered(store)
    with pipeline.client() as client:  # the replayed record reaches the worker again
        body = {"event_id": event_id, "event_type": "page_view", "user_id": "u1", "timestamp": T0}
        assert client.post("/track", json=body).status_code == 202
    pipeline.wait_for(lambda: event_id in registered(store), what="the copy in the registry")
    assert copy_rows(store)[event_id] == [T0, T0 + 90_000]
