"""Who a gRPC call speaks for: the write key in its metadata, checked as the HTTP gate checks it.

The key travels as `authorization: Bearer KEY` (or Basic, as HTTP) or `x-streamtrack-key: KEY`;
the same resolver (keys in ClickHouse, cached), the same per-address and per-key token buckets
(per process, as per HTTP replica) and the same refusals. With STREAMTRACK_AUTH=off every call
is the default project. The client's address is the peer's, or what a trusted proxy forwarded in
`x-forwarded-for` (STREAMTRACK_FORWARDED_ALLOW_IPS, as HTTP).
"""

from __future__ import annotations

import asyncio

import grpc

from streamtrack.api.auth import key_from_headers
from streamtrack.api.grpc.status import RateLimited
from streamtrack.auth.keys import KeyKind
from streamtrack.auth.privacy import anonymize_ip
from streamtrack.auth.proxies import TrustedProxies
from streamtrack.auth.ratelimit import RateLimiter, retry_after_seconds
from streamtrack.auth.resolver import KeyResolver
from streamtrack.config import Settings
from streamtrack.errors import Unauthorized, WrongKeyKind
from streamtrack.store import EventStore
from streamtrack.telemetry import metrics


def peer_address(peer: str) -> str:
    """The client's IP from gRPC's peer text: `ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`, `unix:...`."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return ""


class MetadataAuth:
    def __init__(self, settings: Settings, store: EventStore) -> None:
        self.settings = settings
        self.resolver = KeyResolver(store, settings.key_cache_seconds)
        self.per_key = RateLimiter(settings.rate_limit_key_per_s, 2 * settings.rate_limit_key_per_s)
        self.per_address = RateLimiter(settings.rate_limit_address_per_s, 2 * settings.rate_limit_address_per_s)
        self.proxies = TrustedProxies(settings.forwarded_allow_ips)

    def client_address(self, context: grpc.aio.ServicerContext) -> str:
        """The caller's address: the peer's, unless the peer is a trusted proxy that forwarded one."""
        forwarded = [value for key, value in context.invocation_metadata() or () if key.lower() == "x-forwarded-for"]
        return self.proxies.client(peer_address(context.peer()), ", ".join(v for v in forwarded if isinstance(v, str)))

    def client_ip(self, context: grpc.aio.ServicerContext) -> str:
        """The address events record (truncated when STREAMTRACK_ANONYMIZE_IP is on)."""
        address = self.client_address(context)
        return anonymize_ip(address) if self.settings.anonymize_ip and address else address

    async def project(self, context: grpc.aio.ServicerContext) -> str:
        """The project of the call's write key; raises Unauthorized, WrongKeyKind or RateLimited."""
        if not self.settings.auth:
            return self.settings.default_project
        if wait := self.per_address.take(self.client_address(context)):
            raise _too_many("address", wait)
        metadata = {key.lower(): value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        secret = key_from_headers(metadata)
        if not secret:
            metrics.AUTH_FAILURES.labels("missing_key").inc()
            raise Unauthorized(
                "no key: send the write key in the call's metadata as 'authorization: Bearer KEY' or 'x-streamtrack-key: KEY'",
                code="missing_key",
            )
        known, principal = self.resolver.cached(secret)
        if not known:  # a cache miss queries ClickHouse: off the event loop (StoreUnavailable -> UNAVAILABLE)
            principal = await asyncio.to_thread(self.resolver.resolve, secret)
        if principal is None:
            metrics.AUTH_FAILURES.labels("invalid_key").inc()
            raise Unauthorized("the key is unknown or revoked")
        if principal.kind is not KeyKind.WRITE:
            metrics.AUTH_FAILURES.labels("wrong_key_kind").inc()
            raise WrongKeyKind("this service ingests events: use a write key (stw_...), not a read key")
        if wait := self.per_key.take(principal.prefix + principal.project_id):
            raise _too_many("key", wait)
        return principal.project_id


def _too_many(bucket: str, wait: float) -> RateLimited:
    metrics.RATE_LIMITED.labels(bucket).inc()
    seconds = retry_after_seconds(wait)
    return RateLimited(f"too many requests from this {bucket}; retry after {seconds} s", retry_after=seconds)
