"""IP anonymisation (STREAMTRACK_ANONYMIZE_IP), applied twice so no full address is stored:
the API's gate truncates the client address before any handler sees it (Kafka never gets it),
and the worker truncates every event's `ip` before the insert — addresses that clients assert
themselves (Segment's `context.ip`) included.

The same truncation Google Analytics and Matomo use: IPv4 keeps its /24 (last octet zeroed),
IPv6 its /48 (last 80 bits zeroed). Enough for a country or a network, not a household.
"""

from __future__ import annotations

import ipaddress

import msgspec

from streamtrack.events import Event


def anonymize_ip(address: str) -> str:
    if not address:
        return address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""  # not an address (e.g. a test client's name): keep nothing rather than something unknown
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def anonymize_events(events: list[Event]) -> list[Event]:
    return [msgspec.structs.replace(e, ip=anonymize_ip(e.ip)) if e.ip else e for e in events]
