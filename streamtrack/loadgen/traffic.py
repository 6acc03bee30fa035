"""The traffic model: users browsing a small shop, as a seeded stream of events.

Pure and deterministic (one `random.Random(seed)`, no clock, no I/O) so tests can check
the shape of the traffic, and two runs with one seed send the same events. Many
sessions are open at once and their events interleave, as on a real site; within a
session events keep their order, so a funnel is always page_view -> add_to_cart ->
checkout_started -> purchase, stopped early when the visitor abandons. The sender stamps
Each event is stamped with a session clock: a visitor reads a page for 5–90 s, and so
on. A session's events are generated when it opens and dated so that it ends at that
moment (never in the future), so session durations look like real visits whatever the
sending rate; the clock is injected, so tests fix it.

`event_id` is `<run_id>-<n>`: a retry resends the same id and is stored once, while two
runs with different run ids never collide.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any

from streamtrack.timestamps import now_ms

SITE = "https://shop.example"
PAGES = ["/", "/pricing", "/about", "/blog", "/blog/launch", "/blog/tips", "/search", "/products"]
PRODUCTS = {f"sku-{n:03d}": price for n, price in enumerate([9.99, 19.0, 24.5, 49.0, 79.0, 129.0, 199.0, 349.0], 1)}
FUNNEL = ("page_view", "add_to_cart", "checkout_started", "purchase")
EVENT_TYPES = ("page_view", "click", "scroll", "signup", *FUNNEL[1:])
# event type -> (min, max) seconds until the visitor's next event
DWELL_S = {"page_view": (5, 90), "click": (1, 10), "scroll": (2, 20), "signup": (2, 10),
           "add_to_cart": (10, 60), "checkout_started": (30, 180), "purchase": (1, 5)}

# channel -> (weight, referrers, campaigns); an empty referrer means typed or bookmarked.
CHANNELS: dict[str, tuple[int, list[str], list[str]]] = {
    "direct": (30, [""], []),
    "organic_search": (25, ["https://www.google.com/", "https://duckduckgo.com/", "https://www.bing.com/"], []),
    "paid_search": (12, ["https://www.google.com/"], ["spring-sale", "brand-search"]),
    "social": (13, ["https://t.co/", "https://www.linkedin.com/", "https://www.reddit.com/"], ["launch-week", ""]),
    "email": (10, [""], ["newsletter-42", "cart-reminder"]),
    "referral": (10, ["https://news.ycombinator.com/", "https://blog.partner.example/"], []),
}


@dataclasses.dataclass(frozen=True)
class TrafficShape:
    """The knobs of the model; the defaults give a plausible small shop."""

    bounce_share: float = 0.35
    """Sessions of a single page view."""
    shopper_share: float = 0.45
    """Sessions (past the bounces) that put something in the cart."""
    checkout_share: float = 0.5
    """Carts that reach checkout."""
    purchase_share: float = 0.6
    """Checkouts that end in a purchase."""
    anonymous_share: float = 0.25
    """Visitors not logged in: anonymous_id only, some of them sign up."""
    max_session_events: int = 30
    open_sessions: int = 64
    """Sessions in progress at once, interleaving their events."""


class Traffic:
    """An endless, seeded iterator of events in the canonical JSON shape."""

    def __init__(
        self, *, seed: int, users: int = 1000, run_id: str = "lg", shape: TrafficShape | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if users < 1:
            raise ValueError("users must be at least 1")
        self.shape = shape or TrafficShape()
        self.run_id = run_id
        self._rng = random.Random(seed)
        self._clock = clock
        """Epoch milliseconds now: a session opened now ends now."""
        self._users = users
        self._busy: set[int] = set()  # users with a session open: one session per user at a time
        self._open: list[tuple[int, Iterator[dict[str, Any]]]] = []
        self._sessions = 0
        self._count = 0
        # A few heavy users, many occasional ones (Zipf-like), as on real sites.
        self._cum_weights = list(itertools.accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(users)))
        self._concurrent = min(self.shape.open_sessions, max(1, users // 2))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        while len(self._open) < self._concurrent:
            self._open.append(self._new_session())
        slot = self._rng.randrange(len(self._open))
        user, events = self._open[slot]
        event = next(events, None)
        if event is None:  # that session ended: replace it and draw again
            self._busy.discard(user)
            self._open[slot] = self._new_session()
            return next(self)
        self._count += 1
        event["event_id"] = f"{self.run_id}-{self._count}"
        return event

    def take(self, n: int) -> list[dict[str, Any]]:
        return [next(self) for _ in range(n)]

    def _new_session(self) -> tuple[int, Iterator[dict[str, Any]]]:
        rng = self._rng
        while True:
            user = rng.choices(range(self._users), cum_weights=self._cum_weights)[0]
            if user not in self._busy:
                break
        self._busy.add(user)
        self._sessions += 1
        events = list(self._session(user, f"{self.run_id}-s{self._sessions}"))
        start = self._clock() - events[-1]["timestamp"]  # offsets from the session's start -> epoch ms
        for event in events:
            event["timestamp"] += start
        return user, iter(events)

    def _session(self, user: int, session_id: str) -> Iterator[dict[str, Any]]:
        """One visit: landing page, browsing with clicks and scrolls, maybe a funnel."""
        rng, shape = self._rng, self.shape
        channel = rng.choices(list(CHANNELS), weights=[c[0] for c in CHANNELS.values()])[0]
        _, referrers, campaigns = CHANNELS[channel]
        base: dict[str, Any] = {"session_id": session_id, "channel": channel}
        anonymous = rng.random() < shape.anonymous_share
        if anonymous:
            base["anonymous_id"] = f"anon-{user:05d}"
        else:
            base["user_id"] = f"user-{user:05d}"
        if campaigns and (campaign := rng.choice(campaigns)):
            base["campaign_id"] = campaign

        elapsed_ms = 0

        def event(event_type: str, path: str, referrer: str, **properties: Any) -> dict[str, Any]:
            nonlocal elapsed_ms
            body = {"event_type": event_type, **base, "url": SITE + path, "properties": properties,
                    "timestamp": elapsed_ms}
            if referrer:
                body["referrer"] = referrer
            elapsed_ms += int(rng.uniform(*DWELL_S[event_type]) * 1000)
            return body

        landing = rng.choice(PAGES + [f"/products/{sku}" for sku in PRODUCTS])
        yield event("page_view", landing, rng.choice(referrers), title=_title(landing))
        if rng.random() < shape.bounce_share:
            return
        length = rng.randint(2, shape.max_session_events)
        shopper = rng.random() < shape.shopper_share
        signs_up = anonymous and not shopper and rng.random() < 0.1
        length -= signs_up
        funnel_stage = rng.randint(2, max(2, length - 4)) if shopper else -1  # event number where the cart happens
        path, emitted = landing, 1
        while emitted < length:
            if emitted >= funnel_stage >= 0:
                for funnel_event in self._funnel(event, path, session_id):
                    yield funnel_event
                    emitted += 1
                return
            kind = rng.choices(("page_view", "click", "scroll"), weights=(5, 3, 2))[0]
            if kind == "page_view":
                previous, path = path, rng.choice(PAGES + [f"/products/{sku}" for sku in PRODUCTS])
                yield event("page_view", path, SITE + previous, title=_title(path))
            elif kind == "click":
                yield event("click", path, "", element=rng.choice(["nav_link", "cta_button", "product_card", "footer_link"]))
            else:
                yield event("scroll", path, "", depth_pct=rng.choice([25, 50, 75, 100]))
            emitted += 1
        if signs_up:
            yield event("signup", "/signup", "", method=rng.choice(["email", "google", "github"]))

    def _funnel(self, event: Any, previous: str, session_id: str) -> Iterator[dict[str, Any]]:
        """product page -> cart -> checkout -> purchase, abandoned at some step by most."""
        rng, shape = self._rng, self.shape
        sku = rng.choice(list(PRODUCTS))
        price, quantity = PRODUCTS[sku], rng.choice([1, 1, 1, 2, 3])
        value = round(price * quantity, 2)
        product = f"/products/{sku}"
        yield event("page_view", product, SITE + previous, title=_title(product))
        yield event("add_to_cart", product, "", product_id=sku, price=price, quantity=quantity, currency="EUR")
        if rng.random() >= shape.checkout_share:
            return
        yield event("checkout_started", "/checkout", "", cart_value=value, items=quantity, currency="EUR")
        if rng.random() >= shape.purchase_share:
            return
        order = f"order-{session_id}"  # at most one purchase per session
        yield event("purchase", "/checkout/done", "", order_id=order, product_id=sku, price=price,
                    quantity=quantity, revenue=value, currency="EUR")


def _title(path: str) -> str:
    return path.strip("/").replace("/", " / ").replace("-", " ").title() or "Home"
