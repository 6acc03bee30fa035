"""Which address a call came from when proxies stand in front: `X-Forwarded-For`, believed only
from the proxies named in STREAMTRACK_FORWARDED_ALLOW_IPS.

HTTP gets this from uvicorn (`api/server.py` passes the same setting); gRPC has no such layer, so
its calls go through `TrustedProxies`, with uvicorn's rule: from the right of the forwarded list,
skip the trusted proxies; the first address that is not one is the client's. A peer that is not a
trusted proxy is the client, whatever header it sends: no one picks the address the rate limiter
sees, nor the one events record.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    def __init__(self, allowed: str) -> None:
        """`allowed`: the setting's value, already checked (`config._addresses`): addresses and
        CIDR networks, comma-separated, `*`, or empty for none."""
        items = [item for item in allowed.split(",") if item]
        self.everyone = items == ["*"]
        self.networks = [] if self.everyone else [ipaddress.ip_network(item, strict=False) for item in items]

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address: Address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: `peer` itself unless it is a trusted proxy that forwarded one."""
        if not forwarded_for or not self.networks and not self.everyone or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer  # every hop a proxy: the farthest one
