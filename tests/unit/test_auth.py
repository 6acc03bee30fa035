"""Keys, key extraction, token buckets, the bot filter and IP anonymisation, without HTTP."""

from __future__ import annotations

import base64

import pytest

from streamtrack.api.auth import Access, access_of, key_from_headers
from streamtrack.auth.bots import BotFilter, is_bot_agent, screen
from streamtrack.auth.keys import KeyKind, hash_key, new_key
from streamtrack.auth.privacy import anonymize_ip
from streamtrack.auth.proxies import TrustedProxies
from streamtrack.auth.ratelimit import RateLimiter, retry_after_seconds
from streamtrack.events import Event


def test_keys_are_random_typed_and_hashed() -> None:
    write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
    assert write.secret.startswith("stw_") and read.secret.startswith("str_")
    assert len(write.secret) == 4 + 43  # 32 random bytes, URL-safe base64
    assert new_key(KeyKind.WRITE).secret != write.secret
    assert write.hash == hash_key(write.secret) and len(write.hash) == 64 and write.secret not in write.hash
    assert write.prefix == write.secret[:12]


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer stw_abc"}, "stw_abc"),
        ({"authorization": "bearer  stw_abc "}, "stw_abc"),
        ({"authorization": basic("stw_abc")}, "stw_abc"),  # Segment's SDKs: key as user, empty password
        ({"authorization": basic("", "stw_abc")}, "stw_abc"),
        ({"x-streamtrack-key": "str_xyz"}, "str_xyz"),
        ({"authorization": "Basic %%%notbase64"}, None),
        ({"authorization": "Token abc"}, None),
        ({}, None),
    ],
)
def test_key_from_headers(headers: dict[str, str], expected: str | None) -> None:
    assert key_from_headers(headers) == expected


def test_paths_are_classified() -> None:
    assert access_of("/track") is Access.WRITE and access_of("/v1/batch") is Access.WRITE
    assert access_of("/healthz") is Access.PUBLIC and access_of("/dashboard/app.js") is Access.PUBLIC
    assert access_of("/schema/openapi.json") is Access.PUBLIC
    for path in ("/activities", "/analytics/overview", "/pipeline/status", "/users/u/events", "/unknown"):
        assert access_of(path) is Access.READ


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refuses_past_the_burst_then_recovers() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=4, clock=clock)
    assert [limiter.take("k") for _ in range(4)] == [0, 0, 0, 0]
    wait = limiter.take("k")
    assert wait == pytest.approx(0.5) and retry_after_seconds(wait) == 1
    assert limiter.take("other") == 0  # buckets are per name
    clock.now += 0.5
    assert limiter.take("k") == 0  # one token refilled
    assert limiter.take("k") > 0
    clock.now += 100
    assert [limiter.take("k") for _ in range(4)] == [0, 0, 0, 0]  # refilled up to the burst, no further
    assert limiter.take("k") > 0


def test_token_buckets_stay_within_their_memory_bound() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_buckets=100, clock=Clock())
    for address in range(10_000):
        limiter.take(f"10.0.{address // 256}.{address % 256}")
    assert len(limiter) == 100
    assert RateLimiter(rate=0, burst=0).take("x") == 0  # rate 0: off


def event(event_id: str, user: str, ts: int, agent: str = "") -> Event:
    return Event(event_id=event_id, event_type="click", timestamp=ts, received_at=ts, user_id=user, user_agent=agent)


def test_bot_filter_flags_a_burst_and_lets_normal_traffic_through() -> None:
    bots = BotFilter(limit=10)
    burst = [event(f"b{i}", "bot-user", 1_000_000 + i * 50) for i in range(11)]  # 11 events in 0.5 s
    normal = [event(f"n{i}", "person", 1_000_000 + i * 200) for i in range(10)]  # 10 in 2 s: at the limit, fine
    spread = [event(f"s{i}", "fast-reader", 1_000_000 + i * 101) for i in range(30)]  # 10 per second at most
    flags = bots.bots(burst + normal + spread)
    assert flags == [True] * 11 + [False] * 10 + [False] * 30


def test_bot_filter_catches_a_burst_split_across_batches_and_judges_a_replay_the_same() -> None:
    bots = BotFilter(limit=10)
    first = [event(f"e{i}", "u", 5_000 + i * 10) for i in range(6)]
    second = [event(f"e{i}", "u", 5_000 + i * 10) for i in range(6, 12)]
    assert bots.bots(first) == [False] * 6  # not a burst yet
    assert bots.bots(second) == [True] * 6  # 12 within 0.12 s
    assert bots.bots(second) == [True] * 6  # the same batch replayed: same verdict, nothing double counted
    later = [event("late", "u", 5_000 + 60_000)]
    assert bots.bots(later) == [False]  # the next minute: a person again


def test_bot_filter_stays_within_its_memory_bound() -> None:
    bots = BotFilter(limit=10, max_users=100)
    for start in range(0, 10_000, 1000):  # 10,000 users of one event each: none a burst
        bots.bots([event(f"e{i}", f"user-{i}", 1_000_000 + i) for i in range(start, start + 1000)])
    assert len(bots) == 100


def test_known_bot_agents_are_flagged_plain_clients_are_not() -> None:
    for agent in ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
                  "facebookexternalhit/1.1", "Mozilla/5.0 (compatible; bingbot/2.0)", "AhrefsBot/7.0"):
        assert is_bot_agent(agent), agent
    for agent in ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15",
                  "python-httpx/0.28.1", "curl/8.5.0", "analytics-python/2.3", ""):
        assert not is_bot_agent(agent), agent
    flags = BotFilter(limit=0).bots([event("a", "u", 1, "Googlebot/2.1"), event("b", "u", 1, "Firefox")])
    assert flags == [True, False]  # limit 0: bursts not checked, agents still are


def test_screen_flags_or_drops() -> None:
    batch = [event("a", "u", 1, "Googlebot/2.1"), event("b", "v", 1)]
    flagged, caught = screen(BotFilter(limit=10), batch, "flag")
    assert caught == 1 and [e.is_bot for e in flagged] == [True, False]
    kept, caught = screen(BotFilter(limit=10), batch, "drop")
    assert caught == 1 and [e.event_id for e in kept] == ["b"]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:3456:789a:bcde:f012", "2001:db8:abcd::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("", ""),
        ("testclient", ""),
    ],
)
def test_ip_anonymisation(address: str, expected: str) -> None:
    assert anonymize_ip(address) == expected


def test_key_tables_ddl_single_node_and_cluster() -> None:
    from streamtrack.store.keys import key_statements

    single = key_statements("db")
    assert [s.split(" (")[0] for s in single] == [
        "CREATE TABLE IF NOT EXISTS `db`.`projects`", "CREATE TABLE IF NOT EXISTS `db`.`api_keys`"
    ]
    assert all("ENGINE = ReplacingMergeTree(version)" in s for s in single)
    cluster = key_statements("db", "c1")
    assert all(" ON CLUSTER `c1` " in s for s in cluster)
    # one copy on every node (no {shard} in the path): any node answers a key lookup
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/api_keys', '{replica}', version)" in cluster[1]


def test_bot_filter_keeps_each_projects_users_apart() -> None:
    """A write key is public: project B's burst under A's user id (and A's event ids) must not flag A's events."""
    bots = BotFilter(limit=10)

    def of(project: str, event_id: str, ts: int) -> Event:
        return Event(event_id=event_id, event_type="click", timestamp=ts, received_at=ts, user_id="u", project_id=project)

    a_events = [of("a", f"e{i}", 10_000 + i * 150) for i in range(6)]  # a person: 6 in 0.9 s
    b_flood = [of("b", f"e{i}", 10_000 + i * 5) for i in range(40)]  # same user and ids, 40 in 0.2 s
    flags = bots.bots(a_events + b_flood)
    assert flags == [False] * 6 + [True] * 40
    assert bots.bots(b_flood) == [True] * 40  # B's history carries over...
    assert bots.bots([of("a", "e6", 10_950)]) == [False]  # ...A's does not hold B's events


@pytest.mark.parametrize(
    ("allowed", "peer", "forwarded", "client"),
    [
        ("", "10.0.0.5", "203.0.113.7", "10.0.0.5"),  # no trusted proxies: the peer, whatever it sends
        ("10.0.0.0/8", "192.0.2.1", "203.0.113.7", "192.0.2.1"),  # a peer that is no proxy of ours
        ("10.0.0.0/8", "10.0.0.5", "203.0.113.7", "203.0.113.7"),
        ("10.0.0.0/8", "10.0.0.5", "198.51.100.9, 203.0.113.7, 10.0.0.4", "203.0.113.7"),  # a chain: first untrusted from the right
        ("10.0.0.0/8", "10.0.0.5", "10.0.0.3, 10.0.0.4", "10.0.0.3"),  # every hop a proxy: the farthest
        ("10.0.0.0/8", "10.0.0.5", "", "10.0.0.5"),
        ("*", "192.0.2.1", "203.0.113.7", "203.0.113.7"),
        ("::1,10.0.0.5", "::1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_trusted_proxies_name_the_client(allowed: str, peer: str, forwarded: str, client: str) -> None:
    assert TrustedProxies(allowed).client(peer, forwarded) == client
