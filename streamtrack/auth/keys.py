"""API keys: random, shown once, stored only as a SHA-256 hash.

Kinds of key, each belonging to a project:
- write keys (`stw_…`): ingestion only; public, safe to embed in a web page or an app.
- read keys (`str_…`): activities, analytics, dashboard, erasure; secret, server-side only.
- admin keys (`sta_…`): what a read key opens, plus the figures of the whole instance (every
  project's ingest rate, the workers' lag, dead letters on `/pipeline/status`); for operators.

Why SHA-256 and not bcrypt/argon2: a key is 256 random bits from `secrets`, not a password a
person chose, so there is no dictionary to try and brute force is out of reach even at
billions of hashes per second; a slow, salted hash would only add ~100 ms to each cache miss
and rule out finding a key by its hash (an indexed lookup). The hash still means a leaked
table (or a backup) holds no usable key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import secrets


class KeyKind(enum.StrEnum):
    WRITE = "write"
    READ = "read"
    ADMIN = "admin"


PREFIXES = {KeyKind.WRITE: "stw_", KeyKind.READ: "str_", KeyKind.ADMIN: "sta_"}
READ_KINDS = frozenset({KeyKind.READ, KeyKind.ADMIN})
"""Kinds a read endpoint accepts."""
SHOWN_PREFIX_CHARS = 12
"""How much of a key `streamtrack keys list` shows: the kind marker and 8 random characters."""
MAX_KEY_CHARS = 200


@dataclasses.dataclass(frozen=True)
class NewKey:
    """A freshly generated key: `secret` is shown once and never stored."""

    secret: str
    kind: KeyKind

    @property
    def hash(self) -> str:
        return hash_key(self.secret)

    @property
    def prefix(self) -> str:
        return self.secret[:SHOWN_PREFIX_CHARS]


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a valid key speaks for."""

    project_id: str
    kind: KeyKind
    prefix: str


def new_key(kind: KeyKind) -> NewKey:
    return NewKey(PREFIXES[kind] + secrets.token_urlsafe(32), kind)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_project_id() -> str:
    """Short, URL-safe, unguessable enough to not collide: `p_` + 12 hex characters."""
    return "p_" + secrets.token_hex(6)
