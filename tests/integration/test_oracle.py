"""Oracle tests of the storage: generated streams with copies of every kind, then every answer
must equal a plain Python computation that counts each event once (`oracle_model`).

Hypothesis generates events over two or three projects and 40 days (some within a second of a UTC
midnight), with the copies the worker receives: replayed records (the same event again, in
the same batch or later ones), server-stamped copies of a client id re-sent seconds, days or
a midnight later, client-timestamped retries, the same id in two projects (two events), bots,
identify and alias calls (links), and erasures in the middle of the stream with events of
the erased ids still in flight. The stream goes through the worker's write path
(`worker.sink.Sink`) with a big id cache and with a tiny one (which forces the ClickHouse
lookups), warmed again or restarted between batches; both must store exactly the model's
events, and every analytics endpoint and the activities pages must answer what the model
does. Time is simulated (the Sink's, the erasures' and the tombstones' clock), so a stream
can span 40 days and an erasure can sit between two batches.

Each example has its own databases on the shared embedded engine, dropped afterwards. Below
the generated tests, the minimal cases of what they found, and the migration from version 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import streamtrack.store.privacy as privacy
import streamtrack.worker.erasures as erasures_module
import streamtrack.worker.sink as sink_module
from streamtrack.config import load_settings
from streamtrack.errors import ConfigError
from streamtrack.events import Event
from streamtrack.store import EventStore, open_store
from streamtrack.store.analytics import Filter
from streamtrack.store.analytics_reader import Analytics
from streamtrack.store.codec import events_to_arrow
from streamtrack.store.scoped import project_store
from streamtrack.worker.sink import Sink
from tests.integration import oracle_v1
from tests.integration.oracle_model import ALIAS, DAY, HOUR, IDENTIFY, MINUTE, Erase, Model, Op, Range, Write

BASE = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
"""A Monday; 40 days from it cross a month (a partition) and several weeks."""
SPAN_DAYS = 40
PROJECTS = ("p1", "p2", "p3")
USERS = ("u1", "u2", "u3")
ANONS = ("a1", "a2", "a3", "a4")
DEVICE = dict(zip(USERS, ANONS, strict=False))
"""Each user's usual anonymous id; a few events use another one (a shared device)."""
TYPES = ("page_view", "page_view", "click", "signup", "purchase", IDENTIFY, IDENTIFY, ALIAS)

BIG_CACHE = {"cache_events": 100_000, "window_ms": 45 * DAY}
TINY_CACHE = {"cache_events": 2, "window_ms": 10 * MINUTE}


# --- the generated stream ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Original:
    """An event as its client sent it the first time, and how its copies come."""

    project_id: str
    event_type: str
    user_id: str
    anonymous_id: str
    session_id: str
    url: str
    channel: str
    properties: dict[str, Any]
    is_bot: bool
    kind: str
    """'client' (its id and timestamp), 'server' (its id, no timestamp: stamped on receipt),
    'generated' (no id: the API made one)."""
    received_at: int
    client_lag: int
    """Client kind: how long before its receipt it happened."""
    transit: int
    """From receipt to the worker (long: in flight across an erasure)."""
    copies: tuple[tuple[str, int, int], ...]
    """(kind, delay after the original, transit): 'replay' (the same record again, `delay`
    after the original reached the worker), 'restamp' (server kind: received again `delay`
    later, stamped then), 'retry' (client kind: same timestamp, received `delay` later)."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    originals: tuple[Original, ...]
    erasures: tuple[tuple[int, bool, int, bool], ...]
    """(which original's sender, its anonymous id rather than its user id, how long after that
    original reached the worker, hold: the ids' other events received before the erasure reach
    the worker after it)."""
    batch_sizes: tuple[int, ...]
    warms: tuple[str, ...]
    range_start: int
    range_length: int


def _instant() -> st.SearchStrategy[int]:
    anywhere = st.builds(lambda d, t: BASE + d * DAY + t, st.integers(0, SPAN_DAYS - 1), st.integers(0, DAY - 1))
    midnight = st.builds(lambda d, t: BASE + d * DAY + t, st.integers(1, SPAN_DAYS - 1), st.integers(-1000, 999))
    return st.one_of(anywhere, midnight)


def _next_midnight(ms: int) -> int:
    return (ms // DAY + 1) * DAY


_DELAY = st.one_of(
    st.integers(0, 3_000),  # the same batch, mostly
    st.integers(3_000, 10 * MINUTE),  # a later batch
    st.integers(DAY, 9 * DAY),  # days later
    st.integers(-1, -1),  # just across the next UTC midnight (resolved in `_build`)
)
_TRANSIT = st.one_of(st.integers(0, 30_000), st.integers(0, 3 * HOUR), st.integers(HOUR, 2 * DAY))


@st.composite
def _original(draw: st.DrawFn, projects: tuple[str, ...]) -> Original:
    user = draw(st.sampled_from(("", *USERS, *USERS)))
    if not user:
        anon = draw(st.sampled_from(ANONS))
    else:
        anon = draw(st.sampled_from(("", DEVICE[user], DEVICE[user], DEVICE[user], *ANONS)))
    event_type = draw(st.sampled_from(TYPES))
    urls = ("/", "/pricing", "/docs", "") if event_type == "page_view" else ("", "", "/")
    url = draw(st.sampled_from(urls))
    properties: dict[str, Any] = {}
    plan = draw(st.sampled_from((None, "free", "pro", "")))
    if plan is not None:
        properties["plan"] = plan
    if event_type == ALIAS:
        properties["previous_id"] = draw(st.sampled_from((*ANONS, *USERS)))
    kind = draw(st.sampled_from(("client", "server", "generated")))
    copy_kinds = {"client": ("replay", "retry"), "server": ("replay", "restamp"), "generated": ("replay",)}[kind]
    return Original(
        project_id=draw(st.sampled_from(projects)),
        event_type=event_type,
        user_id=user,
        anonymous_id=anon,
        session_id=draw(st.sampled_from(("", "s1", "s2", "s3", "s4"))),
        url=url,
        channel=draw(st.sampled_from(("", "web", "ios", "email"))),
        properties=properties,
        is_bot=draw(st.sampled_from((False,) * 6 + (True,))),
        kind=kind,
        received_at=draw(_instant()),
        client_lag=draw(st.one_of(st.integers(0, 5_000), st.integers(0, 3 * DAY))) if kind != "server" else 0,
        transit=draw(_TRANSIT),
        copies=tuple(
            draw(st.lists(st.tuples(st.sampled_from(copy_kinds), _DELAY, st.integers(0, 30_000)), max_size=3))
        ),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    projects = PROJECTS[: draw(st.integers(2, 3))]
    return Scenario(
        originals=tuple(draw(st.lists(_original(projects), min_size=4, max_size=28))),
        erasures=tuple(
            draw(
                st.lists(
                    st.tuples(st.integers(0, 27), st.booleans(), st.integers(1, 10 * DAY), st.sampled_from((False, False, True))),
                    max_size=2,
                )
            )
        ),
        batch_sizes=tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=40))),
        warms=tuple(draw(st.lists(st.sampled_from(("", "", "", "warm", "restart")), max_size=40))),
        range_start=BASE + draw(st.integers(0, (SPAN_DAYS - 1) * DAY)),
        range_length=draw(st.integers(HOUR, 10 * DAY)),
    )


def dense(seed: int) -> Scenario:
    """A busy stream (every project, many copies, erasures of identified users with events in
    flight), made with a seeded `random`: the explicit examples, so each run covers every case
    however small Hypothesis' own examples come out."""
    rng = random.Random(seed)
    originals = []
    for _ in range(28):
        user = rng.choice(USERS)
        anon = rng.choice((DEVICE[user], DEVICE[user], "", rng.choice(ANONS)))
        if rng.random() < 0.2:
            user = ""
            anon = anon or rng.choice(ANONS)
        event_type = rng.choice(TYPES)
        kind = rng.choice(("client", "server", "server", "generated"))
        kinds = {"client": ("replay", "retry"), "server": ("replay", "restamp"), "generated": ("replay",)}[kind]
        properties: dict[str, Any] = {"plan": rng.choice(("free", "pro", ""))} if rng.random() < 0.7 else {}
        if event_type == ALIAS:
            properties["previous_id"] = rng.choice((*ANONS, *USERS))
        originals.append(Original(
            project_id=rng.choice(PROJECTS), event_type=event_type, user_id=user, anonymous_id=anon,
            session_id=rng.choice(("", "s1", "s2", "s3")),
            url=rng.choice(("/", "/pricing", "/docs", "")) if event_type == "page_view" else "",
            channel=rng.choice(("", "web", "ios")), properties=properties, is_bot=rng.random() < 0.15, kind=kind,
            received_at=BASE + rng.randrange(SPAN_DAYS) * DAY + rng.choice((rng.randrange(DAY), DAY - rng.randrange(1000))),
            client_lag=rng.choice((0, rng.randrange(5000), rng.randrange(3 * DAY))) if kind != "server" else 0,
            transit=rng.choice((rng.randrange(30_000), rng.randrange(3 * HOUR))),
            copies=tuple(
                (rng.choice(kinds), rng.choice((rng.randrange(3000), rng.randrange(10 * MINUTE), DAY + rng.randrange(8 * DAY), -1)),
                 rng.randrange(30_000))
                for _ in range(rng.choice((0, 1, 1, 2, 3)))
            ),
        ))
    identified = [i for i, o in enumerate(originals) if o.user_id and o.anonymous_id]
    erasures = ((rng.choice(identified), False, rng.randrange(DAY, 5 * DAY), True),
                (rng.choice(identified), True, rng.randrange(HOUR, DAY), False))
    return Scenario(tuple(originals), erasures, tuple(rng.randrange(1, 7) for _ in range(40)),
                    tuple(rng.choice(("", "", "warm", "restart")) for _ in range(40)),
                    BASE + rng.randrange((SPAN_DAYS - 1) * DAY), rng.randrange(HOUR, 10 * DAY))


def _build(scenario: Scenario) -> list[Op]:
    """The operations: batches in the order the worker receives the records, erasures between."""
    used: set[int] = set()
    erasures: list[tuple[str, str, int, int | None]] = []
    for k, anonymous, after, hold in scenario.erasures:
        o = scenario.originals[k % len(scenario.originals)]
        who = (o.anonymous_id if anonymous else o.user_id) or o.user_id or o.anonymous_id
        holds_from = k % len(scenario.originals) if hold else None  # that original itself is stored before
        erasures.append((o.project_id, who, o.received_at + o.transit + after, holds_from))

    def unique(ms: int) -> int:
        """Every stored timestamp distinct: ties would make 'first event of a session' and
        'the latest link' a matter of chance."""
        while ms in used:
            ms += 1
        used.add(ms)
        return ms

    counters: dict[tuple[str, str], int] = {}
    deliveries: list[tuple[int, int, Event]] = []
    for index, o in enumerate(scenario.originals):
        prefix = "g" if o.kind == "generated" else "e"
        n = counters[(o.project_id, prefix)] = counters.get((o.project_id, prefix), 0) + 1
        received = o.received_at
        if o.kind == "server":
            received = timestamp = unique(received)
        else:
            timestamp = unique(max(BASE, received - o.client_lag))
        held = [at for project, who, at, holds_from in erasures if holds_from not in (None, index)
                and project == o.project_id and who in (o.user_id, o.anonymous_id) and received <= at]
        delivered = max([received + o.transit, *(at + 1 + o.transit for at in held)])
        event = Event(
            event_id=f"{prefix}{n}", event_type=o.event_type, timestamp=timestamp, received_at=received,
            user_id=o.user_id, anonymous_id=o.anonymous_id, session_id=o.session_id, url=o.url,
            channel=o.channel, properties=o.properties, project_id=o.project_id, is_bot=o.is_bot,
            generated_id=o.kind == "generated",
        )
        deliveries.append((delivered, len(deliveries), event))
        for kind, delay, transit in o.copies:
            if delay < 0:
                delay = _next_midnight(received) - received + transit % 1500
            if kind == "replay":
                deliveries.append((delivered + delay, len(deliveries), event))
                continue
            again = received + delay
            if kind == "restamp":
                again = unique(again)
                copy = msgspec.structs.replace(event, timestamp=again, received_at=again)
            else:
                copy = msgspec.structs.replace(event, received_at=again)
            deliveries.append((again + transit, len(deliveries), copy))
    deliveries.sort(key=lambda d: (d[0], d[1]))
    erasures.sort(key=lambda e: e[2])
    ops: list[Op] = []
    sizes = iter(scenario.batch_sizes)
    warms = iter(scenario.warms)
    i = 0
    while i < len(deliveries):
        batch = deliveries[i: i + next(sizes, 5)]
        i += len(batch)
        at = batch[-1][0]
        while erasures and erasures[0][2] < at:
            project, who, erased_at, _ = erasures.pop(0)
            ops.append(Erase(project, who, erased_at))
        ops.append(Write(tuple(e for _, _, e in batch), at, next(warms, "") if ops else "restart"))
    ops += [Erase(project, who, at) for project, who, at, _ in erasures]
    return ops


# --- running it --------------------------------------------------------------------------------


class Clock:
    """The simulated time of the worker, the erasures and the tombstones."""

    def __init__(self) -> None:
        self.ms = BASE

    def now(self) -> int:
        return self.ms


@contextlib.contextmanager
def simulated_time() -> Iterator[Clock]:
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch:
        for module in (sink_module, erasures_module, privacy):
            patch.setattr(module, "now_ms", clock.now)
        yield clock


@contextlib.contextmanager
def fresh_store(engine_path: Path, *, migrate: bool = True) -> Iterator[EventStore]:
    """A store on a database of its own (migrated unless told), dropped afterwards."""
    database = f"test_{secrets.token_hex(6)}"
    store = open_store(load_settings(env={}, data_dir=str(engine_path.parent), clickhouse_database=database))
    try:
        if migrate:
            store.migrate()
        yield store
    finally:
        store.drop_database()
        store.close()


def feed(store: EventStore, ops: list[Op], clock: Clock, *, cache_events: int, window_ms: int) -> None:
    """The operations through the worker's write path, as the Worker runs it."""
    sink: Sink | None = None
    for n, op in enumerate(ops, start=1):
        clock.ms = op.at_ms
        if isinstance(op, Erase):
            privacy.erase_user(store, op.project_id, op.user)
            continue
        if sink is None or op.warm == "restart":
            sink = Sink(store, cache_events=cache_events, window_ms=window_ms)
            sink.warm()
        elif op.warm == "warm":
            sink.warm()
        sink.write(list(op.events), dedup_token=f"oracle-{n}", batch_id=n)


def stored_rows(store: EventStore, projects: tuple[str, ...]) -> dict[str, list[Event]]:
    return {p: store.activities(project_id=p, limit=100_000) for p in projects}


def stored_links(store: EventStore) -> set[tuple[str, str, str, int]]:
    """(project, previous id, user id, latest time) of every alias link stored."""
    rows = store.backend.query(
        "SELECT project_id, previous_id, user_id, toUnixTimestamp64Milli(max(timestamp))"
        f" FROM `{store.database}`.`aliases` GROUP BY project_id, previous_id, user_id"
    )
    return {(p, previous, user, int(at)) for p, previous, user, at in rows}


def model_links(model: Model) -> set[tuple[str, str, str, int]]:
    latest: dict[tuple[str, str, str], int] = {}
    for link in model.links:
        key = (link.project_id, link.previous_id, link.user_id)
        latest[key] = max(latest.get(key, link.timestamp), link.timestamp)
    return {(*key, at) for key, at in latest.items()}


def check_analytics(store: EventStore, model: Model, project: str, scenario: Scenario, now_ms: int) -> None:
    """Every endpoint's answer for `project` against the model's."""
    reader = Analytics(project_store(store, project))
    expected = model.analytics(project)
    whole = Range(BASE - DAY, BASE + (SPAN_DAYS + 10) * DAY)
    part = Range(scenario.range_start, scenario.range_start + scenario.range_length)
    pages = Range(part.start_ms, part.end_ms, "page_view")

    def f(r: Range) -> Filter:
        return Filter(start_ms=r.start_ms, end_ms=r.end_ms, event_type=r.event_type)

    assert reader.overview(now_ms=now_ms) == expected.overview(now_ms)
    for where, interval, group_by, top in (
        (part, "hour", None, 5),
        (whole, "day", None, 5),
        (pages, "hour", "channel", 2),
        (part, "day", "event_type", 2),
        (whole, "week", "url", 2),
        (whole, "day", "property:plan", 2),
    ):
        assert reader.timeseries(f(where), interval=interval, group_by=group_by, top=top) == expected.timeseries(
            where, interval, group_by, top
        ), (where, interval, group_by)
    for by in ("event_type", "url", "channel", "property:plan"):
        assert reader.breakdown(f(whole), by=by, limit=100) == expected.breakdown(whole, by, 100), by
    for by in ("event_type", "property:plan"):
        assert reader.breakdown(f(part), by=by, limit=2) == expected.breakdown(part, by, 2), by
    assert reader.top_pages(f(whole), limit=10) == expected.top_pages(whole, 10)
    assert reader.top_pages(f(part), limit=2) == expected.top_pages(part, 2)
    for now, window, day in ((now_ms, 30, now_ms // DAY * DAY), (part.end_ms, 24 * 60, part.start_ms // DAY * DAY)):
        answer = reader.active_users(now_ms=now, window_minutes=window, day_ms=day)
        assert answer == expected.active_users(now, window, day)
    assert reader.sessions(f(whole)) == expected.sessions(whole)
    assert reader.sessions(f(part)) == expected.sessions(part)
    funnels = ((whole, ["page_view", "signup", "purchase"], 3600), (part, ["click", "purchase"], 3 * DAY // 1000))
    for where, steps, window in funnels:
        assert reader.funnel(f(where), steps=steps, window_seconds=window) == expected.funnel(where, steps, window)
    for where, period, periods in ((whole, "day", 7), (whole, "week", 4), (part, "day", 3)):
        assert reader.retention(f(where), period=period, periods=periods) == expected.retention(where, period, periods)


def check_activity_pages(store: EventStore, model: Model, project: str) -> None:
    """Keyset pages of 3 give every stored event exactly once, newest first."""
    seen: list[Event] = []
    after = None
    while True:
        page = store.activities(project_id=project, limit=3, after=after)
        if not page:
            break
        seen += page
        after = (page[-1].timestamp, page[-1].event_id)
    assert seen == model.activities(project)


ORACLE = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@ORACLE
@given(scenario=scenarios())
@example(scenario=dense(1))
@example(scenario=dense(2))
def test_every_answer_equals_the_oracle(engine_path: Path, scenario: Scenario) -> None:
    ops = _build(scenario)
    model = Model().apply(ops)
    projects = PROJECTS
    end = max(op.at_ms for op in ops if isinstance(op, Write))
    with simulated_time() as clock, fresh_store(engine_path) as big, fresh_store(engine_path) as tiny:
        feed(big, ops, clock, **BIG_CACHE)
        feed(tiny, ops, clock, **TINY_CACHE)
        expected = {p: model.activities(p) for p in projects}
        for store in (big, tiny):
            assert stored_rows(store, projects) == expected
            assert stored_links(store) == model_links(model)
            stats = store.stats()
            assert (stats.rows, stats.distinct_events) == (len(model.stored), len(model.stored))
        for project in projects[:2]:
            check_analytics(big, model, project, scenario, end)
            check_activity_pages(big, model, project)


# --- the migration from version 1 --------------------------------------------------------------


def every_copy(scenario: Scenario) -> list[Event]:
    """Every copy the scenario's clients sent, each a row of its own as version 1 could store
    them; copies with equal sorting keys (same id, type and time) as one row, the last one
    inserted: what version 1's ReplacingMergeTree kept."""
    ops = _build(dataclasses.replace(scenario, erasures=()))
    rows = {(e.project_id, e.event_id, e.timestamp): e for op in ops if isinstance(op, Write) for e in op.events}
    return list(rows.values())


def version_1(store: EventStore, rows: list[Event]) -> Model:
    """A version-1 database holding `rows` (and the links its identify and alias events made);
    returns the model of what version 2 must hold: each event's earliest copy."""
    model = Model()
    for event in sorted(rows, key=lambda e: (e.timestamp, e.received_at)):
        model.write([event])
    oracle_v1.create(store)
    oracle_v1.insert(store, rows)
    oracle_v1.fill_registry(store)
    for link in model.links:
        oracle_v1.link(store, link.project_id, link.previous_id, link.user_id, link.timestamp)
    return model


def tables(store: EventStore) -> set[str]:
    rows = store.backend.query("SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database})
    return {name for (name,) in rows}


def check_all(store: EventStore, model: Model, scenario: Scenario) -> None:
    expected = {p: model.activities(p) for p in PROJECTS}
    assert stored_rows(store, PROJECTS) == expected
    stats = store.stats()
    assert (stats.rows, stats.distinct_events) == (len(model.stored), len(model.stored))
    now = max((e.timestamp for e in model.stored.values()), default=BASE)
    for project in PROJECTS[:2]:
        check_analytics(store, model, project, scenario, now)


MIGRATION = settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@MIGRATION
@given(scenario=scenarios())
@example(scenario=dense(1))
def test_migration_from_version_1_keeps_each_event_once(engine_path: Path, scenario: Scenario) -> None:
    rows = every_copy(scenario)
    with fresh_store(engine_path, migrate=False) as store:
        model = version_1(store, rows)
        before = store.stats(), tables(store)
        with pytest.raises(ConfigError, match="`streamtrack migrate`"):
            store.migrate()  # a process start does not rewrite data
        assert (store.stats(), tables(store)) == before  # and leaves the database as it was
        store.migrate(rewrite=True)
        assert not tables(store) & {*oracle_v1.TABLES, "events_v2", "schema_migration_progress"}
        assert store.backend.query(f"SELECT max(version) FROM `{store.database}`.`schema_version`") == [(2,)]
        check_all(store, model, scenario)
        store.migrate(rewrite=True)  # idempotent: nothing changes
        store.migrate()
        check_all(store, model, scenario)


class CrashingBackend:
    """The store's backend, except that the first statement `crash_at` picks runs `meanwhile`
    (what happens before the crash: part of the statement's work, or an old writer's insert)
    and then fails: a migration cut short."""

    def __init__(
        self, store: EventStore, crash_at: Callable[[str, dict[str, Any]], bool], meanwhile: Callable[[], None]
    ) -> None:
        self._backend = store.backend
        self._crash_at = crash_at
        self._meanwhile = meanwhile
        self.name = self._backend.name

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        if self._crash_at(sql, params or {}):
            self._meanwhile()
            raise RuntimeError("crash during the migration")
        self._backend.command(sql, params)

    def query(self, sql: str, params: dict[str, Any] | None = None, settings: Any = None) -> list[tuple[Any, ...]]:
        return self._backend.query(sql, params, settings)

    def insert_events(self, database: str, table: str, data: Any, settings: Any) -> None:
        self._backend.insert_events(database, table, data, settings)

    def close(self) -> None:
        """The real backend is closed by its store."""


def _month(ms: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.year * 100 + moment.month


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(scenario=scenarios())
def test_resumed_migration_keeps_each_event_once(engine_path: Path, scenario: Scenario) -> None:
    rows = every_copy(scenario)
    months = sorted({_month(e.timestamp) for e in rows})
    assume(len(months) >= 2)
    with fresh_store(engine_path, migrate=False) as store:
        model = version_1(store, rows)
        second = [e for e in rows if _month(e.timestamp) == months[1]]

        def copying_second_month(sql: str, params: dict[str, Any]) -> bool:
            return sql.startswith(f"INSERT INTO `{store.database}`.`events_v2`") and params.get("month") == months[1]

        def half_of_it() -> None:
            half = events_to_arrow(second[: max(1, len(second) // 2)])
            store.backend.insert_events(store.database, "events_v2", half, {"async_insert": 0})

        crashing = EventStore(CrashingBackend(store, copying_second_month, half_of_it), store.database)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="crash"):
            crashing.migrate(rewrite=True)
        progress = store.backend.query(f"SELECT month FROM `{store.database}`.`schema_migration_progress`")
        assert progress == [(months[0],)]  # the first month was copied and recorded, the second cut short
        with pytest.raises(ConfigError, match="`streamtrack migrate`"):
            store.migrate()
        store.migrate(rewrite=True)
        check_all(store, model, scenario)


# --- minimal cases of what the oracle found ------------------------------------------------------


def _event(event_id: str, at: int, **fields: Any) -> Event:
    fields = {"event_type": "click", "user_id": "u1", "project_id": "p1", "received_at": at, **fields}
    return Event(event_id=event_id, timestamp=at, **fields)


def test_overview_counts_zero_sessions_when_no_event_has_one(engine_path: Path) -> None:
    with simulated_time() as clock, fresh_store(engine_path) as store:
        feed(store, [Write((_event("e1", BASE),), BASE, "restart")], clock, **BIG_CACHE)
        overview = Analytics(project_store(store, "p1")).overview(now_ms=BASE)
        assert (overview.total_events, overview.unique_sessions) == (1, 0)


def test_copy_received_after_an_erasure_is_stored_alike_by_every_cache(engine_path: Path) -> None:
    """A client id without a client timestamp, stored, then its user erased; the client re-sends
    it a day later (a new server timestamp, received after the erasure): new data, stored,
    whatever the worker's id cache (its size, a partition assignment in between) remembers."""
    original = _event("e1", BASE)
    others = tuple(_event(f"f{i}", BASE + i * MINUTE, user_id="u2") for i in (1, 2, 3))  # a tiny cache forgets e1
    again = msgspec.structs.replace(original, timestamp=BASE + DAY, received_at=BASE + DAY)
    ops: list[Op] = [Write((original, *others), BASE + 3 * MINUTE, "restart"), Erase("p1", "u1", BASE + HOUR)]
    warm = Write((again,), BASE + DAY, "warm")
    with simulated_time() as clock, contextlib.ExitStack() as stack:
        big, tiny, warmed = (stack.enter_context(fresh_store(engine_path)) for _ in range(3))
        feed(big, [*ops, dataclasses.replace(warm, warm="")], clock, **BIG_CACHE)
        feed(tiny, [*ops, dataclasses.replace(warm, warm="")], clock, **TINY_CACHE)
        feed(warmed, [*ops, warm], clock, **BIG_CACHE)
        for store in (big, tiny, warmed):
            assert store.activities(project_id="p1", limit=10) == [again, *reversed(others)]


def test_in_flight_original_and_a_copy_received_after_the_erasure_alike_in_any_batching(engine_path: Path) -> None:
    """The original, received before the erasure, reaches the worker after it (dropped); its
    re-sent copy, received after the erasure, is stored, whether both records come in one
    batch or in two."""
    original = _event("e1", BASE)
    again = msgspec.structs.replace(original, timestamp=BASE + DAY, received_at=BASE + DAY)
    erase = Erase("p1", "u1", BASE + HOUR)
    one = [Write((_event("e0", BASE - 1, user_id="u2"),), BASE, "restart"), erase, Write((original, again), BASE + DAY)]
    two = [*one[:2], Write((original,), BASE + DAY - 1), Write((again,), BASE + DAY)]
    with simulated_time() as clock, fresh_store(engine_path) as first, fresh_store(engine_path) as second:
        feed(first, one, clock, **BIG_CACHE)
        feed(second, two, clock, **BIG_CACHE)
        for store in (first, second):
            assert [e.event_id for e in store.activities(project_id="p1", limit=10)] == ["e1", "e0"]
            assert store.activities(project_id="p1", limit=1) == [again]


def test_migration_keeps_one_copy_of_a_bot_event_copied_across_months(engine_path: Path) -> None:
    """Version 1's copies registry left bots out, so it cannot tell the copy of month 2 that an
    earlier month holds the event."""
    before = int(datetime(2026, 1, 31, 23, 59, 59, 500000, tzinfo=UTC).timestamp() * 1000)
    rows = [_event("e1", at, is_bot=True) for at in (before, before + 800)]  # re-stamped across the month
    with fresh_store(engine_path, migrate=False) as store:
        oracle_v1.create(store)
        oracle_v1.insert(store, rows)
        oracle_v1.fill_registry(store)
        store.migrate(rewrite=True)
        assert store.activities(project_id="p1", limit=10) == rows[:1]


def _two_months() -> tuple[list[Event], Model]:
    rows = [_event("e1", BASE), _event("e2", BASE + 30 * DAY, user_id="u2")]  # January and February
    model = Model()
    model.write(rows)
    return rows, model


def test_resumed_migration_carries_over_what_old_writers_stored_during_the_first_attempt(engine_path: Path) -> None:
    """An old writer still running (a rolling upgrade) stores an event while the copy runs; the
    copy then crashes and is resumed. The event, in a month copied before it arrived, must
    be carried over like one stored during an uninterrupted copy."""
    rows, model = _two_months()
    late = _event("e3", BASE + DAY, received_at=BASE + 31 * DAY, user_id="u3")  # a January time, received last
    model.write([late])
    with fresh_store(engine_path, migrate=False) as store:
        oracle_v1.create(store)
        oracle_v1.insert(store, rows)
        oracle_v1.fill_registry(store)

        def copying_february(sql: str, params: dict[str, Any]) -> bool:
            return sql.startswith(f"INSERT INTO `{store.database}`.`events_v2`") and params.get("month") == 202602

        crashing = EventStore(CrashingBackend(store, copying_february, lambda: oracle_v1.insert(store, [late])), store.database)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="crash"):
            crashing.migrate(rewrite=True)
        store.migrate(rewrite=True)
        stored = store.activities(project_id="p1", limit=10)
        assert [e.event_id for e in stored] == ["e2", "e3", "e1"]
        assert stored == model.activities("p1")


def test_migration_resumed_after_the_swap_keeps_version_2(engine_path: Path) -> None:
    """A crash after the tables were swapped (while carrying over, or dropping version 1's
    tables), then `streamtrack migrate` again: the events must stay in version 2's table."""
    rows, model = _two_months()
    with fresh_store(engine_path, migrate=False) as store:
        oracle_v1.create(store)
        oracle_v1.insert(store, rows)
        oracle_v1.fill_registry(store)

        def carrying_over(sql: str, params: dict[str, Any]) -> bool:
            return sql.startswith(f"INSERT INTO `{store.database}`.`events` ")

        crashing = EventStore(CrashingBackend(store, carrying_over, lambda: None), store.database)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="crash"):
            crashing.migrate(rewrite=True)
        store.migrate(rewrite=True)
        assert stored_rows(store, ("p1",)) == {"p1": model.activities("p1")}
        columns = store.backend.query(
            "SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = 'events'", {"db": store.database}
        )
        assert columns == [("project_id, toDate(timestamp), event_type, event_id",)]
        with simulated_time() as clock:  # and the worker can write to it
            feed(store, [Write((_event("e9", BASE + 32 * DAY),), BASE + 32 * DAY, "restart")], clock, **BIG_CACHE)


def test_fenced_batch_undo_leaves_each_event_once(engine_path: Path) -> None:
    """A fenced worker's batch, stored again by the partition's next owner (whose cache was
    warmed before the first insert): after the undo (`worker.fencing`), every answer is the
    oracle's, also those the projections give."""
    events = tuple(
        _event(f"e{i}", BASE + i * HOUR + 7, received_at=BASE + i * HOUR + 9, user_id=f"u{i % 3}", session_id=f"s{i % 2}")
        for i in range(6)
    )
    model = Model()
    model.write(events)
    scenario = Scenario((), (), (), (), range_start=BASE, range_length=DAY)
    with simulated_time() as clock, fresh_store(engine_path) as store:
        clock.ms = BASE + 6 * HOUR
        fenced, next_owner = (Sink(store, **BIG_CACHE) for _ in range(2))
        fenced.warm()
        next_owner.warm()
        assert fenced.write(list(events), dedup_token="fenced", batch_id=1) == list(events)
        assert next_owner.write(list(events), dedup_token="next", batch_id=2) == list(events)  # raced past: copies
        assert store.stats().rows == 2 * len(events)
        store.delete_batch_copies(1, [(e.project_id, e.event_id) for e in events])
        assert stored_rows(store, ("p1",)) == {"p1": model.activities("p1")}
        check_analytics(store, model, "p1", scenario, BASE + 6 * HOUR)
