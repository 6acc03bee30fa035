"""The worker's bot filter: bursts per user, and user agents that announce a bot.

A user (user id, else anonymous id, within its project) with more than `limit` events whose
timestamps fall within one second is a bot for that second: every one of those events is
marked. Event time rather than arrival time, so an app that flushes a day of offline events
at once is not a bot. Per-user history (the latest `limit` + 1 events within the last second seen) carries over
between batches in an LRU of at most `max_users` users, so a burst split across batches is
still caught; events of a burst stored by an earlier batch keep their flag-less row. The
history is keyed by event id, so a batch replayed after a crash is judged the same way.
Users are keyed by project too: a write key is public, and one project's burst under another
project's user id must not turn that project's user into a bot (nor the same event id collide).
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict, defaultdict
from collections.abc import Sequence

import msgspec

from streamtrack.events import Event

WINDOW_MS = 1000

# Tokens crawlers, monitors and headless browsers put in their User-Agent (after the `isbot`
# and crawler-user-agents lists, the unambiguous part: plain HTTP clients such as curl or
# python-httpx are not flagged, since servers legitimately send events with them).
KNOWN_BOT_AGENT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|archiver|headlesschrome|phantomjs|facebookexternalhit|"
    r"lighthouse|pingdom|uptimerobot|statuscake|google-inspectiontool|mediapartners|adsbot|"
    r"bingpreview|yandex|baiduspider|duckduckgo-favicons|petalbot|semrush|ahrefs|mj12bot|dotbot",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def is_bot_agent(user_agent: str) -> bool:
    """Cached: a handful of user agents make most traffic, and the regex is the filter's dearest
step (docs/benchmarks.md, "Keys, limits and the bot filter")."""
    return bool(user_agent) and KNOWN_BOT_AGENT.search(user_agent) is not None


class BotFilter:
    def __init__(self, limit: int, max_users: int = 100_000) -> None:
        self.limit = limit
        """Most events one user may have within one second; 0 turns the burst check off."""
        self.max_users = max_users
        self._recent: OrderedDict[tuple[str, str], dict[str, int]] = OrderedDict()  # (project, user) -> {event_id: time}

    def __len__(self) -> int:
        """How many users' recent events it holds: at most `max_users`."""
        return len(self._recent)

    def bots(self, events: Sequence[Event]) -> list[bool]:
        """One flag per event, in order: True for a burst's events and known bot agents."""
        flags = [is_bot_agent(e.user_agent) for e in events]
        if self.limit <= 0:
            return flags
        by_user: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            by_user[(event.project_id, event.user_id or event.anonymous_id)].append(index)
        for user, indexes in by_user.items():
            seen = self._recent.pop(user, {})
            for index in indexes:
                seen[events[index].event_id] = events[index].timestamp
            if len(seen) > self.limit:  # most users: too few events to be a burst, nothing to sort
                burst = self._burst_ids(seen)
                for index in indexes:
                    flags[index] = flags[index] or events[index].event_id in burst
            self._remember(user, seen)
        return flags

    def _burst_ids(self, seen: dict[str, int]) -> set[str]:
        """Ids of the events in every one-second window holding more than `limit` events."""
        ordered = sorted(seen.items(), key=lambda item: item[1])
        burst: set[str] = set()
        start = 0
        for end in range(len(ordered)):
            while ordered[end][1] - ordered[start][1] >= WINDOW_MS:
                start += 1
            if end - start + 1 > self.limit:
                burst.update(event_id for event_id, _ in ordered[start:end + 1])
        return burst

    def _remember(self, user: tuple[str, str], seen: dict[str, int]) -> None:
        newest = max(seen.values())
        if len(seen) <= self.limit + 1:
            self._recent[user] = {i: t for i, t in seen.items() if newest - t < WINDOW_MS}
        else:
            recent = sorted(((t, i) for i, t in seen.items() if newest - t < WINDOW_MS), reverse=True)
            self._recent[user] = {event_id: t for t, event_id in recent[: self.limit + 1]}
        while len(self._recent) > self.max_users:  # every user counts towards the bound, bursting or not
            self._recent.popitem(last=False)


def screen(bot_filter: BotFilter, events: list[Event], action: str) -> tuple[list[Event], int]:
    """The events to store and how many were bots: flagged (`is_bot`) or, with action `drop`, left out."""
    flags = bot_filter.bots(events)
    caught = sum(flags)
    if not caught:
        return events, 0
    if action == "drop":
        return [e for e, bot in zip(events, flags, strict=True) if not bot], caught
    return [msgspec.structs.replace(e, is_bot=True) if bot else e for e, bot in zip(events, flags, strict=True)], caught
