"""Event ids the API makes when a client sent none: UUIDv7 (RFC 9562), as 32 hex digits.

Time-ordered: the first 48 bits are the receipt time in milliseconds, so ids generated
together sort together. The other 74 bits are random from `os.urandom`, never from a
seeded generator: a client that could predict another's id could send that id first and
have the real event taken for its copy (`worker.dedup` keeps the first).
uuid.uuid4() cost a syscall and a UUID object per event (27 % of /batch's time in a
profile); here the random bytes are drawn 1,000 ids at a time, per thread, and a forked
child starts on fresh ones (it must never reuse its parent's).
"""

from __future__ import annotations

import os
import threading

_IDS_PER_DRAW = 1000
_HEX_PER_ID = 20  # 10 random bytes a draw; 19 hex digits used: rand_a (12 bits), 2 bits beside the variant, rand_b (60)
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The first hex digit of rand_b holds the variant (binary 10) and two random bits."""


class _Pool(threading.local):
    hex: str = ""
    used: int = 0
    ms: int = -1
    prefix: str = ""
    """The time and version digits of `ms`: a batch's ids share them (formatting them was half the cost)."""


_pool = _Pool()


def _fresh_pool() -> None:
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_fresh_pool)


def new_event_id(ms: int) -> str:
    """A UUIDv7 for time `ms` (epoch milliseconds), e.g. '019ae5c2a1b07c3e9d5f0a6b7c8d9e0f'."""
    pool = _pool
    at = pool.used
    if at >= len(pool.hex):
        pool.hex = os.urandom(_IDS_PER_DRAW * _HEX_PER_ID // 2).hex()
        at = 0
    pool.used = at + _HEX_PER_ID
    if ms != pool.ms:
        pool.ms, pool.prefix = ms, f"{ms & 0xFFFF_FFFF_FFFF:012x}7"
    rand = pool.hex
    return pool.prefix + rand[at:at + 3] + _VARIANT[rand[at + 3]] + rand[at + 4:at + 19]
