"""Events to Arrow columns for inserts, and result rows back to Events.

Inserts are column-wise: one list per column straight from the structs, then one
`pa.array` per column with an explicit type. Explicit types matter beyond speed: a batch
whose `tags` are all empty would otherwise be inferred as `list<null>`, which ClickHouse
refuses for Array(String). Times stay int64 epoch milliseconds and are typed as
`timestamp[ms, UTC]` without conversion; properties become compact JSON bytes
(msgspec), which ClickHouse stores in the String column as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import pyarrow as pa

from streamtrack.events import Event
from streamtrack.store.schema import BATCH_COLUMN, COLUMNS

_TIME = pa.timestamp("ms", tz="UTC")


def _arrow_type(name: str, clickhouse_type: str) -> pa.DataType:
    if clickhouse_type.startswith("DateTime64"):
        return _TIME
    if clickhouse_type == "Array(String)":
        return pa.list_(pa.string())
    if clickhouse_type == "UInt8":
        return pa.uint8()
    if name == "properties":
        return pa.binary()  # msgspec's JSON bytes, no decode to str just to re-encode
    return pa.string()


ARROW_SCHEMA = pa.schema([(name, _arrow_type(name, type_)) for name, type_ in COLUMNS] + [(BATCH_COLUMN[0], pa.uint64())])

_encode_properties = msgspec.json.Encoder().encode
_decode_properties = msgspec.json.Decoder(dict[str, Any]).decode


def events_to_arrow(events: Sequence[Event], batch: int = 0) -> pa.Table:
    """A table with ARROW_SCHEMA, one row per event, in the order given; `batch` names the insert."""
    encode = _encode_properties
    columns = [
        [e.event_id for e in events],
        [e.event_type for e in events],
        [e.timestamp for e in events],
        [e.received_at for e in events],
        [e.user_id for e in events],
        [e.anonymous_id for e in events],
        [e.session_id for e in events],
        [e.url for e in events],
        [e.referrer for e in events],
        [e.channel for e in events],
        [e.campaign_id for e in events],
        [e.tags for e in events],
        [encode(e.properties) for e in events],
        [e.ip for e in events],
        [e.user_agent for e in events],
        [e.project_id for e in events],
        [int(e.is_bot) for e in events],
        [batch] * len(events),
    ]
    arrays = [pa.array(values, type=field.type) for values, field in zip(columns, ARROW_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def rows_to_events(rows: Iterable[Sequence[Any]]) -> list[Event]:
    """Rows of `queries.SELECT_EVENT_COLUMNS` (Event field order, times in ms) to Events."""
    decode = _decode_properties
    return [
        Event(
            event_id=event_id,
            event_type=event_type,
            timestamp=timestamp,
            received_at=received_at,
            user_id=user_id,
            anonymous_id=anonymous_id,
            session_id=session_id,
            url=url,
            referrer=referrer,
            channel=channel,
            campaign_id=campaign_id,
            tags=list(tags),
            properties=decode(properties),
            ip=ip,
            user_agent=user_agent,
            project_id=project_id,
            is_bot=bool(is_bot),
        )
        for (
            event_id,
            event_type,
            timestamp,
            received_at,
            user_id,
            anonymous_id,
            session_id,
            url,
            referrer,
            channel,
            campaign_id,
            tags,
            properties,
            ip,
            user_agent,
            project_id,
            is_bot,
        ) in rows
    ]
