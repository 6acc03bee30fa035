"""The oracle: a plain Python model of what StreamTrack must store and answer.

It takes the same operations the oracle tests send the worker's Sink (batches of events as
Kafka delivers them, erasures in between) and applies the promises of the design in the
simplest form that can be checked by eye: each (project, event id) is stored once, as its
first copy delivered; an erasure removes the user and every id linked to it, and drops
what arrives later but was received before it (what is received after it is new data, a
copy of an erased event too). Every analytics answer is then computed by
looking at the model's events one by one, with the semantics the reader's docstrings give
(`streamtrack.store.analytics_reader`). Nothing here shares code with the store but the
answer types and `format_ms` (the text form of a time, part of the contract).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import msgspec

from streamtrack.events import Event
from streamtrack.store.analytics_reader import (
    ActiveUsers,
    Breakdown,
    BreakdownRow,
    Cohort,
    Funnel,
    FunnelStep,
    Overview,
    PageRow,
    Point,
    Retention,
    Series,
    Sessions,
    Timeseries,
    TopPages,
)
from streamtrack.timestamps import format_ms

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
STEP = {"hour": HOUR, "day": DAY, "week": 7 * DAY}
MONDAY = 4 * DAY
"""1970-01-05, the first Monday: weeks start on Mondays."""
IDENTIFY, ALIAS = "$identify", "$alias"


@dataclasses.dataclass(frozen=True)
class Write:
    """A batch the worker consumes at `at_ms`; `warm`: '' (nothing), 'warm' (a partition
    assignment first) or 'restart' (a new worker process, then its assignment)."""

    events: tuple[Event, ...]
    at_ms: int
    warm: str = ""


@dataclasses.dataclass(frozen=True)
class Erase:
    project_id: str
    user: str
    at_ms: int


Op = Write | Erase


@dataclasses.dataclass(frozen=True)
class Link:
    project_id: str
    previous_id: str
    user_id: str
    timestamp: int


def uid(event: Event) -> str:
    """The id an event was sent with."""
    return event.user_id or event.anonymous_id


def stored_form(event: Event) -> Event:
    """What the store gives back: `generated_id` travels in Kafka only."""
    return msgspec.structs.replace(event, generated_id=False)


def links_of(event: Event) -> list[tuple[str, str]]:
    """(previous id, user id) links an identify or alias event makes."""
    if event.event_type == IDENTIFY and event.user_id and event.anonymous_id and event.user_id != event.anonymous_id:
        return [(event.anonymous_id, event.user_id)]
    previous = event.properties.get("previous_id")
    if event.event_type == ALIAS and isinstance(previous, str) and previous not in ("", event.user_id) and event.user_id:
        return [(previous, event.user_id)]
    return []


class Model:
    """The stored events and alias links after a sequence of operations."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], Event] = {}
        self.erased: dict[tuple[str, str], int] = {}
        self.links: list[Link] = []
        self.log: list[str] = []
        """What happened to notable copies (the tests count the cases they covered)."""

    # --- writing -----------------------------------------------------------------------------

    def apply(self, ops: Iterable[Op]) -> Model:
        for op in ops:
            if isinstance(op, Write):
                self.write(op.events)
            else:
                self.erase(op.project_id, op.user, op.at_ms)
        return self

    def erased_before(self, event: Event) -> bool:
        """The event's sender (its user id, or its anonymous id when sent anonymously) was erased
        at or after the event was received."""
        at = self.erased.get((event.project_id, event.user_id or event.anonymous_id))
        return at is not None and event.received_at <= at

    def write(self, events: Sequence[Event]) -> list[Event]:
        """The batch's events that are new: those of ids erased after their receipt dropped
        first, then the first copy of each event not stored wins. So a copy received after an
        erasure of its event is stored (it is received after: new data)."""
        seen: set[tuple[str, str]] = set()
        fresh = []
        for event in events:
            key = (event.project_id, event.event_id)
            if self.erased_before(event):
                self.log.append("in-flight event of an erased id dropped")
                continue
            if key in self.stored or key in seen:
                continue
            seen.add(key)
            fresh.append(event)
        for event in fresh:
            self.stored[(event.project_id, event.event_id)] = stored_form(event)
            self.links += [Link(event.project_id, p, u, event.timestamp) for p, u in links_of(event)]
        return fresh

    def linked_ids(self, project: str, user: str) -> set[str]:
        """The user, and the ids that became it: ids aliased to it (chains followed back) and the
        anonymous ids of its identified events — never from an anonymous id to another user."""
        ids = {user}
        while True:
            found = set(ids)
            for link in self.links:
                if link.project_id == project and link.user_id in ids:
                    found.add(link.previous_id)
            for event in self.stored.values():
                if event.project_id == project and event.user_id in ids and event.anonymous_id:
                    found.add(event.anonymous_id)
            if found == ids:
                return ids
            ids = found

    @staticmethod
    def _sent_by(event: Event, project: str, ids: set[str]) -> bool:
        return event.project_id == project and (event.user_id or event.anonymous_id) in ids

    def erase(self, project: str, user: str, at_ms: int) -> None:
        ids = self.linked_ids(project, user)
        for id_ in ids:
            self.erased[(project, id_)] = max(self.erased.get((project, id_), at_ms), at_ms)
        self.stored = {key: e for key, e in self.stored.items() if not self._sent_by(e, project, ids)}
        self.links = [
            link for link in self.links
            if not (link.project_id == project and (link.previous_id in ids or link.user_id in ids))
        ]

    # --- reading -----------------------------------------------------------------------------

    def activities(self, project: str) -> list[Event]:
        """The project's stored events (bots too), newest first, ties by event id."""
        events = [e for e in self.stored.values() if e.project_id == project]
        return sorted(events, key=lambda e: (e.timestamp, e.event_id), reverse=True)

    def analytics(self, project: str) -> ProjectAnswers:
        person = {}
        for link in sorted((k for k in self.links if k.project_id == project), key=lambda k: k.timestamp):
            person[link.previous_id] = link.user_id  # the latest link of each id wins
        events = sorted(
            (e for e in self.stored.values() if e.project_id == project and not e.is_bot), key=lambda e: e.timestamp
        )
        return ProjectAnswers(events, lambda e: person.get(uid(e), uid(e)))


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _floor(ms: int, step: int, origin: int = 0) -> int:
    return (ms - origin) // step * step + origin


def _property_text(value: object) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _date(ms: int) -> str:
    return format_ms(ms)[:10]


@dataclasses.dataclass
class Range:
    """The filters the oracle tests use: a time range, optionally one event type."""

    start_ms: int
    end_ms: int
    event_type: str | None = None

    def keeps(self, event: Event) -> bool:
        return self.start_ms <= event.timestamp < self.end_ms and self.event_type in (None, event.event_type)


class ProjectAnswers:
    """Every analytics answer of one project, computed from its events (bots left out)."""

    def __init__(self, events: list[Event], person: Callable[[Event], str]) -> None:
        self.events = events
        """Oldest first."""
        self.person = person
        """Who did it, across alias links (the reader's `uid` with links)."""

    def overview(self, now_ms: int) -> Overview:
        """All-time, users as sent (not merged across links)."""
        if not self.events:
            return Overview(0, 0, 0, None, None, 0)
        return Overview(
            total_events=len(self.events),
            unique_users=len({uid(e) for e in self.events}),
            unique_sessions=len({e.session_id for e in self.events if e.session_id}),
            first_event_at=format_ms(self.events[0].timestamp),
            last_event_at=format_ms(self.events[-1].timestamp),
            events_last_5m=sum(1 for e in self.events if e.timestamp >= now_ms - 5 * MINUTE),
        )

    @staticmethod
    def value(event: Event, by: str) -> str | None:
        """The dimension's value of an event; None: a property breakdown leaves it out."""
        if by.startswith("property:"):
            key = by.removeprefix("property:")
            return _property_text(event.properties[key]) if key in event.properties else None
        return {"event_type": event.event_type, "url": event.url, "channel": event.channel}[by]

    def _breakdown(self, events: Iterable[Event], by: str, limit: int) -> list[BreakdownRow]:
        groups: dict[str, list[Event]] = {}
        for event in events:
            value = self.value(event, by)
            if value is not None:
                groups.setdefault(value, []).append(event)
        rows = [BreakdownRow(v, len(es), len({self.person(e) for e in es})) for v, es in groups.items()]
        return sorted(rows, key=lambda r: (-r.events, r.value))[:limit]

    def breakdown(self, where: Range, by: str, limit: int) -> Breakdown:
        return Breakdown(dimension=by, rows=self._breakdown(filter(where.keeps, self.events), by, limit))

    def top_pages(self, where: Range, limit: int) -> TopPages:
        pages = [e for e in self.events if where.keeps(e) and e.event_type == "page_view" and e.url]
        return TopPages(rows=[PageRow(r.value, r.events, r.users) for r in self._breakdown(pages, "url", limit)])

    def timeseries(self, where: Range, interval: str, group_by: str | None = None, top: int = 5) -> Timeseries:
        """Whole buckets: from the one holding start to the one holding end - 1, counted up to
        the end of the hour that holds end - 1."""
        step, origin = STEP[interval], MONDAY if interval == "week" else 0
        first = _floor(where.start_ms, step, origin)
        last_hour = _floor(where.end_ms - 1, HOUR)
        starts = list(range(first, where.end_ms, step))
        names = []
        if group_by is not None:
            names = [r.value for r in self._breakdown(filter(where.keeps, self.events), group_by, top)]
        cells: dict[str, dict[int, list[Event]]] = {}
        for event in self.events:
            hour = _floor(event.timestamp, HOUR)
            if not first <= hour <= last_hour or where.event_type not in (None, event.event_type):
                continue
            if group_by is None:
                name = "all"
            else:
                value = self.value(event, group_by)
                if value is None:
                    continue
                name = value if value in names else "other"
            cells.setdefault(name, {}).setdefault(_floor(hour, step, origin), []).append(event)
        order = ["all"] if group_by is None else [*names, *(["other"] if "other" in cells and "other" not in names else [])]
        series = []
        for name in order:
            points = []
            for t in starts:
                es = cells.get(name, {}).get(t, [])
                points.append(Point(format_ms(t), len(es), len({self.person(e) for e in es})))
            series.append(Series(name, points))
        return Timeseries(interval=interval, from_=format_ms(where.start_ms), to=format_ms(where.end_ms), series=series)

    def active_users(self, now_ms: int, window_minutes: int, day_ms: int) -> ActiveUsers:
        """Active now across links; DAU/WAU/MAU users as sent, by whole UTC days up to `day_ms`'s."""
        recent = {self.person(e) for e in self.events if now_ms - window_minutes * MINUTE <= e.timestamp <= now_ms}

        def users(days: int) -> int:
            return len({uid(e) for e in self.events if day_ms - (days - 1) * DAY <= e.timestamp < day_ms + DAY})

        return ActiveUsers(len(recent), window_minutes, _date(day_ms), users(1), users(7), users(30))

    def sessions(self, where: Range) -> Sessions:
        by_session: dict[str, list[Event]] = {}
        for event in self.events:
            if where.keeps(event) and event.session_id:
                by_session.setdefault(event.session_id, []).append(event)
        if not by_session:
            return Sessions(0, 0.0, 0.0, 0.0, 0.0)
        users = {self.person(es[0]) for es in by_session.values()}  # the user of each session's first event
        seconds = sorted((es[-1].timestamp - es[0].timestamp) / 1000 for es in by_session.values())  # events oldest first
        n = len(seconds)
        h = 0.5 * (n - 1) + 1  # quantileExactInclusive(0.5): linear between the two middle values
        k = int(h)
        median = seconds[k - 1] if k >= n else seconds[k - 1] + (h - k) * (seconds[k] - seconds[k - 1])
        bounces = sum(1 for es in by_session.values() if len(es) == 1)
        pages = sum(1 for es in by_session.values() for e in es if e.event_type == "page_view")
        return Sessions(
            sessions=n,
            active_sessions_per_user=_ratio(n, len(users)),
            median_session_seconds=round(median, 3),
            bounce_rate=_ratio(bounces, n),
            pages_per_session=_ratio(pages, n),
        )

    def funnel(self, where: Range, steps: Sequence[str], window_seconds: int) -> Funnel:
        """Per user: the longest chain step 1, step 2, … in time order, all within the window of
        the chain's step 1 (distinct steps)."""
        assert len(set(steps)) == len(steps)
        by_user: dict[str, list[Event]] = {}
        for event in self.events:
            if where.keeps(event) and event.event_type in steps:
                by_user.setdefault(self.person(event), []).append(event)
        levels = []
        for events in by_user.values():
            started: list[int | None] = [None] * len(steps)  # the step-1 time of a chain at each level
            for event in events:
                i = steps.index(event.event_type)
                if i == 0:
                    started[0] = event.timestamp
                else:
                    begun = started[i - 1]
                    if begun is not None and event.timestamp <= begun + window_seconds * 1000:
                        started[i] = begun
            levels.append(max((i + 1 for i, s in enumerate(started) if s is not None), default=0))
        reached = [sum(1 for level in levels if level >= k) for k in range(1, len(steps) + 1)]
        return Funnel(
            window_seconds=window_seconds,
            steps=[
                FunnelStep(
                    step, users, _ratio(users, reached[0]),
                    _ratio(users, reached[i - 1]) if i else (1.0 if users else 0.0),
                )
                for i, (step, users) in enumerate(zip(steps, reached, strict=True))
            ],
        )

    def retention(self, where: Range, period: str, periods: int) -> Retention:
        step, origin = STEP[period], MONDAY if period == "week" else 0
        seen: dict[str, set[int]] = {}
        for event in self.events:
            if where.keeps(event):
                seen.setdefault(self.person(event), set()).add(_floor(event.timestamp, step, origin))
        last = _floor(where.end_ms - 1, step, origin)
        cohorts: dict[int, list[set[int]]] = {}
        for user_periods in seen.values():
            cohorts.setdefault(min(user_periods), []).append(user_periods)
        answer = []
        for start in sorted(cohorts):
            members = cohorts[start]
            shown = min(periods, (last - start) // step + 1)
            retained = [sum(1 for p in members if start + k * step in p) for k in range(shown)]
            answer.append(Cohort(_date(start), len(members), retained, [_ratio(n, len(members)) for n in retained]))
        return Retention(period=period, cohorts=answer)
