"""Identity records: what the `$identify`, `$group` and `$alias` events say about who is who.

These events travel like any other (same topic, same dedup by event id, same dead letters;
see `streamtrack.segment`), and the worker derives the records below from the batch's new
events, storing them before the events themselves: a crash in between replays the batch,
the events are still new, and the records are derived and stored again (identical rows,
which the tables collapse). Derivation is pure so it can be tested without anything running.

An event of those types sent to /track is read the same way; one that lacks the data
(no `group_id`, no `previous_id`) is still stored as an event, it just links nothing.
Ids are per project (the event's, stamped by the API from its key): one project's user `42`
is not another's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from streamtrack.errors import ClientError
from streamtrack.events import Event
from streamtrack.segment import ALIAS, GROUP, IDENTIFY


class UnknownIdentity(ClientError):
    """No identify, group or alias call ever named this id."""

    status = 404
    code = "not_found"


@dataclasses.dataclass(frozen=True)
class TraitsRecord:
    project_id: str
    kind: str
    """'user' or 'group'."""
    id: str
    event_id: str
    timestamp: int
    traits: dict[str, Any]
    member: str = ""
    """For a group: the user (or anonymous id) who made the call."""


@dataclasses.dataclass(frozen=True)
class AliasRecord:
    project_id: str
    previous_id: str
    """An anonymous id, or a user id that was replaced."""
    user_id: str
    event_id: str
    timestamp: int


def identity_records(events: Iterable[Event]) -> tuple[list[TraitsRecord], list[AliasRecord]]:
    """The traits and alias records of a batch's events (other event types give none)."""
    traits: list[TraitsRecord] = []
    aliases: list[AliasRecord] = []
    for event in events:
        if event.event_type == IDENTIFY:
            who = event.user_id or event.anonymous_id
            traits.append(
                TraitsRecord(event.project_id, "user", who, event.event_id, event.timestamp, _traits(event))
            )
            if event.user_id and event.anonymous_id and event.user_id != event.anonymous_id:
                aliases.append(
                    AliasRecord(
                        event.project_id, event.anonymous_id, event.user_id, event.event_id, event.timestamp
                    )
                )
        elif event.event_type == GROUP:
            group_id = _text(event.properties.get("group_id"))
            if group_id:
                member = event.user_id or event.anonymous_id
                traits.append(
                    TraitsRecord(
                        event.project_id,
                        "group",
                        group_id,
                        event.event_id,
                        event.timestamp,
                        _traits(event),
                        member,
                    )
                )
        elif event.event_type == ALIAS:
            previous_id = _text(event.properties.get("previous_id"))
            if previous_id and event.user_id and previous_id != event.user_id:
                aliases.append(
                    AliasRecord(event.project_id, previous_id, event.user_id, event.event_id, event.timestamp)
                )
    return traits, aliases


def merge_traits(calls: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Traits of calls oldest first, merged trait by trait: the latest value of each wins."""
    merged: dict[str, Any] = {}
    for traits in calls:
        merged.update(traits)
    return merged


def _traits(event: Event) -> dict[str, Any]:
    traits = event.properties.get("traits")
    return traits if isinstance(traits, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else ""
