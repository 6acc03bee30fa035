"""Storing and reading identity records (traits of users and groups, alias links).

Same discipline as `queries`: values only as `{name:Type}` parameters, identifiers through
`quote_identifier`. Reads are exact before merges: each call's row is read once
(`LIMIT 1 BY event_id`), and an id linked twice resolves to its latest link (`argMax`).
Alias links resolve one step: `a -> b` and `b -> c` make `a` count as `b`, as Segment's
own alias (which expects aliasing to the final user id) does.

Reads are one project's, like the analytics: they take a `project_store(store, project)`
and say `project_id = {scope_project:String}`, so a query made without a project fails
(ClickHouse refuses the unset parameter) instead of answering across projects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec
import pyarrow as pa

from streamtrack.identities import AliasRecord, TraitsRecord, UnknownIdentity, merge_traits
from streamtrack.store.queries import insert_settings
from streamtrack.store.schema import ALIASES_TABLE, IDENTITIES_TABLE, quote_identifier
from streamtrack.store.scoped import SCOPE_PARAM
from streamtrack.store.store import EventStore
from streamtrack.timestamps import format_ms

_TIME = pa.timestamp("ms", tz="UTC")
_encode = msgspec.json.Encoder().encode
_decode_traits = msgspec.json.Decoder(dict[str, Any]).decode
_PROJECT = f"project_id = {{{SCOPE_PARAM}:String}}"


def _arrow(records: Sequence[TraitsRecord] | Sequence[AliasRecord]) -> pa.Table:
    """One column per record field (the tables' columns, same names); traits as JSON bytes."""
    columns = {}
    for field in dataclasses.fields(records[0]):
        values = [getattr(record, field.name) for record in records]
        if field.name == "timestamp":
            columns[field.name] = pa.array(values, _TIME)
        elif field.name == "traits":
            columns[field.name] = pa.array([_encode(v) for v in values], pa.binary())
        else:
            columns[field.name] = pa.array(values, pa.string())
    return pa.table(columns)


def insert_identities(
    store: EventStore, traits: Sequence[TraitsRecord], aliases: Sequence[AliasRecord], dedup_token: str | None
) -> None:
    """One insert per table; the worker's batch token makes a replayed insert a no-op."""
    settings = insert_settings(dedup_token, cluster=bool(store.cluster))
    if traits:
        store.backend.insert_events(store.database, IDENTITIES_TABLE, _arrow(traits), settings)
    if aliases:
        store.backend.insert_events(store.database, ALIASES_TABLE, _arrow(aliases), settings)


def _table(store: EventStore, name: str) -> str:
    return f"{quote_identifier(store.database)}.`{name}`"


def _rows(store: EventStore, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return store.backend.query(sql, params)


def resolve_user(store: EventStore, user_id: str) -> tuple[str, list[str]]:
    """(the user `user_id` became, every id linked to that user, the user first)."""
    aliases = _table(store, ALIASES_TABLE)
    [(target,)] = _rows(
        store,
        f"SELECT argMax(user_id, timestamp) FROM {aliases} WHERE {_PROJECT} AND previous_id = {{id:String}}",
        {"id": user_id},
    )
    canonical = target or user_id
    linked = _rows(
        store,
        f"SELECT previous_id FROM {aliases} WHERE {_PROJECT} AND user_id = {{id:String}} GROUP BY previous_id"
        " HAVING argMax(user_id, timestamp) = {id:String} ORDER BY previous_id",
        {"id": canonical},
    )
    return canonical, [canonical, *(row[0] for row in linked if row[0] != canonical)]


def _calls(store: EventStore, kind: str, ids: list[str]) -> list[tuple[Any, ...]]:
    """(id, epoch ms, event id, member, traits JSON) of every call about `ids`, oldest first, each once."""
    return _rows(
        store,
        "SELECT id, toUnixTimestamp64Milli(timestamp), event_id, member, traits"
        f" FROM {_table(store, IDENTITIES_TABLE)}"
        f" WHERE {_PROJECT} AND kind = {{kind:String}} AND id IN {{ids:Array(String)}}"
        " ORDER BY timestamp, event_id LIMIT 1 BY event_id",
        {"kind": kind, "ids": ids},
    )


@dataclasses.dataclass(frozen=True)
class Profile:
    id: str
    ids: list[str]
    """Every id linked to this one (aliases, anonymous ids it was identified from), itself first."""
    traits: dict[str, Any]
    calls: int
    first_seen_at: str
    updated_at: str
    members: list[str] | None = None


def user_profile(store: EventStore, user_id: str) -> Profile:
    """The merged traits of a user, following alias links; UnknownIdentity if nothing names it."""
    canonical, ids = resolve_user(store, user_id)
    calls = _calls(store, "user", ids)
    if not calls and len(ids) == 1 and canonical == user_id:
        raise UnknownIdentity(f"no identify or alias call names the user {user_id!r}", field="user_id")
    return _profile(canonical, ids, calls)


def group_profile(store: EventStore, group_id: str) -> Profile:
    """The merged traits of a group and the users who joined it; UnknownIdentity if never seen."""
    calls = _calls(store, "group", [group_id])
    if not calls:
        raise UnknownIdentity(f"no group call names the group {group_id!r}", field="group_id")
    members = sorted({member for *_, member, _ in calls if member})
    return dataclasses.replace(_profile(group_id, [group_id], calls), members=members)


def _profile(id_: str, ids: list[str], calls: list[tuple[Any, ...]]) -> Profile:
    times = [int(row[1]) for row in calls]
    return Profile(
        id=id_,
        ids=ids,
        traits=merge_traits(_decode_traits(row[4]) for row in calls),
        calls=len(calls),
        first_seen_at=format_ms(min(times)) if times else "",
        updated_at=format_ms(max(times)) if times else "",
    )
