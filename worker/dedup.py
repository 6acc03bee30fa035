"""De-duplication before the insert: each event_id is stored once.

Copies of an event reach the worker in two ways: a replay of records after a crash or a
rebalance (identical copies), and a client retrying with the same event_id after a 503 or a
lost response (the same event, but with a new server timestamp when the client sent none).
Both go to the same partition (same user key), so one worker sees them in order; dropping
copies within the batch and ids already in ClickHouse keeps the table clean, and the
analytics simple. Reads still count each event_id once, for the rare copy that races past.
"""

from __future__ import annotations

from streamtrack.events import Event
from streamtrack.store import EventStore


def new_events(events: list[Event], store: EventStore) -> list[Event]:
    """`events` without repeats within the batch and without those already stored (first copy wins).

    An event is its id within its project: two projects may send the same client-chosen id.
    """
    seen: set[tuple[str, str]] = set()
    unique = []
    for event in events:
        key = (event.project_id, event.event_id)
        if key not in seen:
            seen.add(key)
            unique.append(event)
    stored = store.stored_event_ids(unique)
    return [e for e in unique if (e.project_id, e.event_id) not in stored] if stored else unique
