"""Parsing the times clients send: RFC 3339 text or epoch seconds/milliseconds.

Used for event timestamps and for the `from`/`to` query parameters, so both accept the
same forms. Epoch numbers below 10^11 are seconds (10^11 s is the year 5138), larger
ones milliseconds; text without an offset is taken as UTC, which is what trackers mean.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

EPOCH_SECONDS_LIMIT = 100_000_000_000
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
LATEST_MS = 10_413_792_000_000  # 2300-01-01T00:00:00Z, past the end of ClickHouse's DateTime64 range
MAX_FUTURE_MS = 24 * 3600 * 1000  # PostHog hides events > 23 h ahead; we refuse > 24 h.


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_time(value: object) -> int:
    """Epoch milliseconds from RFC 3339 text, epoch seconds or epoch milliseconds.

    Raises ValueError with a message fit for a client.
    """
    if isinstance(value, bool):
        raise ValueError("expected RFC 3339 text or epoch seconds/milliseconds, got a boolean")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if value < 0:
            raise ValueError("expected a time after 1970, got a negative number")
        return int(value * 1000) if value < EPOCH_SECONDS_LIMIT else int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() or _is_decimal(text):
            return parse_time(float(text) if "." in text else int(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"expected RFC 3339 text (e.g. 2026-01-31T12:00:00Z) or epoch seconds/milliseconds, got {_clip(value)!r}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    raise ValueError(f"expected RFC 3339 text or epoch seconds/milliseconds, got {type(value).__name__}")


def check_event_time(ms: int, received_ms: int) -> None:
    """Refuse times ClickHouse cannot store or that cannot be right."""
    if ms < EARLIEST_MS:
        raise ValueError(f"{format_ms(ms) if ms >= 0 else ms} is before 2000-01-01")
    if ms > received_ms + MAX_FUTURE_MS:
        raise ValueError(f"{format_ms(ms)} is more than 24 hours in the future")


def format_ms(ms: int) -> str:
    """RFC 3339 with milliseconds and a Z, e.g. 2026-01-31T12:00:00.000Z."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (ValueError, OverflowError, OSError):
        return f"epoch {ms} ms"


def _is_decimal(text: str) -> bool:
    whole, dot, frac = text.partition(".")
    return bool(dot) and whole.isdigit() and frac.isdigit()


def _clip(text: str, size: int = 40) -> str:
    return text if len(text) <= size else text[:size] + "…"
