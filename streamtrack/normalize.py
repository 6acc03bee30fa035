"""From what clients send to the canonical `Event`, with every limit checked.

Trackers disagree on names (`event_type`/`event_name`/`event`/`action`, `url`/`page_url`,
`properties`/`metadata`, camelCase ids...), so each canonical field lists the names it
accepts. Anything else at the top level is kept in `properties`, never dropped.
Every refusal is an `InvalidEvent` naming the field and the problem, so a client can fix
its payload without reading our code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from streamtrack.errors import InvalidEvent, MalformedBody, PayloadTooLarge
from streamtrack.event_ids import new_event_id
from streamtrack.events import DEFAULT_PROJECT, Event
from streamtrack.timestamps import check_event_time, parse_time


@dataclasses.dataclass(frozen=True)
class Limits:
    """The documented limits of one event (docs/api/ingestion.md's table is written from these)."""

    max_event_bytes: int = 65_536
    max_id_chars: int = 200
    max_name_chars: int = 200
    max_url_chars: int = 8_192
    max_tags: int = 50
    max_tag_chars: int = 200
    max_property_depth: int = 8
    max_properties: int = 1_000
    max_property_key_chars: int = 256


# canonical field -> accepted names, first one preferred.
ALIASES: dict[str, tuple[str, ...]] = {
    "event_type": ("event_type", "event_name", "event", "action"),
    "event_id": ("event_id", "message_id", "messageId", "insert_id", "$insert_id"),
    "user_id": ("user_id", "userId", "distinct_id"),
    "anonymous_id": ("anonymous_id", "anonymousId"),
    "session_id": ("session_id", "sessionId"),
    "url": ("url", "page_url", "pageUrl"),
    "referrer": ("referrer", "referer"),
    "channel": ("channel",),
    "campaign_id": ("campaign_id", "campaignId"),
    "timestamp": ("timestamp", "ts"),
    "tags": ("tags",),
    "properties": ("properties", "metadata"),
}
_FIELD_OF = {name: field for field, names in ALIASES.items() for name in names}
_ID_FIELDS = ("event_id", "user_id", "anonymous_id", "session_id")
_NAME_FIELDS = ("channel", "campaign_id")
_URL_FIELDS = ("url", "referrer")


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """What the server knows about the request an event came in."""

    received_at: int
    ip: str = ""
    user_agent: str = ""
    project_id: str = DEFAULT_PROJECT


def decode_json(body: bytes) -> Any:
    """Decode a body, turning every decoder complaint into a 400 a person can read."""
    try:
        return msgspec.json.decode(body)
    except RecursionError:
        raise MalformedBody("the JSON is nested too deeply") from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec's complaint about a string's bytes, not a DecodeError
        raise not_utf8(exc) from None


def not_utf8(exc: UnicodeDecodeError) -> MalformedBody:
    """JSON text is UTF-8 (RFC 8259): a string holding other bytes is a malformed body, not our bug."""
    return MalformedBody(f"the body is not valid JSON: a string holds bytes that are not UTF-8 ({exc.reason})")


def split_batch(body: bytes, *, max_events: int) -> list[msgspec.Raw]:
    """The events of a batch body, undecoded so each can be sized and judged on its own.

    Accepts a JSON array of events or an object with an `events` (or `batch`) array.
    """
    try:
        items = msgspec.json.decode(body, type=list[msgspec.Raw] | _BatchEnvelope)
    except RecursionError:
        raise MalformedBody("the JSON is nested too deeply") from None
    except msgspec.ValidationError:
        raise InvalidEvent(
            "a batch is a JSON array of events, or an object with an 'events' array", field="events"
        ) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise not_utf8(exc) from None
    if isinstance(items, _BatchEnvelope):
        items = items.events if items.events is not None else items.batch
        if items is None:
            raise InvalidEvent("a batch object needs an 'events' array", field="events")
    if not items:
        raise InvalidEvent("the batch has no events", field="events")
    if len(items) > max_events:
        raise PayloadTooLarge(
            f"the batch has {len(items)} events; at most {max_events} are accepted per request", field="events"
        )
    return items


class _BatchEnvelope(msgspec.Struct):
    events: list[msgspec.Raw] | None = None
    batch: list[msgspec.Raw] | None = None


def normalize_raw(raw: bytes | msgspec.Raw, context: RequestContext, limits: Limits) -> Event:
    """Size-check, decode and normalize one event's JSON.

    Most events use only the names of ALIASES, one per field, with valid values: those are
    decoded straight into a struct (`_Known`) and checked without building a dict. Anything
    else (another key, two names for one field, a value that needs a refusal) goes through
    `normalize`, which is the reference: the two give equal events, and only `normalize`
    refuses (tests/unit/test_normalize_known.py compares them on generated events).
    """
    if len(raw) > limits.max_event_bytes:
        raise PayloadTooLarge(
            f"the event is {len(raw)} bytes; at most {limits.max_event_bytes} are accepted", code="event_too_large"
        )
    return _normalize_known(raw, context, limits) or normalize(decode_json(bytes(raw)), context, limits)


def normalize(data: Any, context: RequestContext, limits: Limits) -> Event:
    """The canonical event for one decoded JSON value, or InvalidEvent."""
    if not isinstance(data, dict):
        raise InvalidEvent(f"an event is a JSON object, got {_kind(data)}")
    fields: dict[str, tuple[str, Any]] = {}
    extra: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for key, value in data.items():
        field = _FIELD_OF.get(key)
        if field is None:
            extra[key] = value
        elif key == "metadata":
            metadata = _properties(value, key)
        elif field in fields and fields[field][1] != value:
            raise InvalidEvent(
                f"'{fields[field][0]}' and '{key}' are two names for the same field; give one", field=key
            )
        else:
            fields[field] = (key, value)

    values: dict[str, Any] = {}
    for field in _ID_FIELDS:
        if field in fields:
            values[field] = _string(fields[field], limits.max_id_chars, allow_int=True)
    for field in _NAME_FIELDS:
        if field in fields:
            values[field] = _string(fields[field], limits.max_name_chars)
    for field in _URL_FIELDS:
        if field in fields:
            values[field] = _string(fields[field], limits.max_url_chars)

    if "event_type" not in fields:
        raise InvalidEvent(
            "missing: give the event's name as 'event_type' (or 'event_name', 'event', 'action')",
            field="event_type",
        )
    event_type = _string(fields["event_type"], limits.max_name_chars).strip()
    if not event_type:
        raise InvalidEvent("must not be empty", field=fields["event_type"][0])
    if not values.get("user_id") and not values.get("anonymous_id"):
        raise InvalidEvent("missing: give 'user_id' or 'anonymous_id' (or both)", field="user_id")
    if "event_id" in values and not values["event_id"]:
        raise InvalidEvent("must not be empty when given", field=fields["event_id"][0])

    timestamp = context.received_at
    if "timestamp" in fields and fields["timestamp"][1] is not None:
        key, raw_time = fields["timestamp"]
        try:
            timestamp = parse_time(raw_time)
            check_event_time(timestamp, context.received_at)
        except ValueError as exc:
            raise InvalidEvent(str(exc), field=key) from None

    tags = _tags(fields["tags"], limits) if "tags" in fields else []
    properties = metadata
    if "properties" in fields:
        properties = {**metadata, **_properties(fields["properties"][1], fields["properties"][0])}
    if extra:
        properties = {**extra, **properties}
    _check_properties(properties, limits)

    generated_id = "event_id" not in values
    return Event(
        event_id=values.pop("event_id", None) or new_event_id(context.received_at),
        generated_id=generated_id,
        event_type=event_type,
        timestamp=timestamp,
        received_at=context.received_at,
        tags=tags,
        properties=properties,
        ip=context.ip,
        project_id=context.project_id,
        user_agent=context.user_agent[: limits.max_url_chars],
        **values,
    )


def _string(item: tuple[str, Any], max_chars: int, *, allow_int: bool = False) -> str:
    key, value = item
    if value is None:
        return ""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        expected = "a string or an integer" if allow_int else "a string"
        raise InvalidEvent(f"expected {expected}, got {_kind(value)}", field=key)
    if len(value) > max_chars:
        raise InvalidEvent(f"is {len(value)} characters long; at most {max_chars} are accepted", field=key)
    return value


def _tags(item: tuple[str, Any], limits: Limits) -> list[str]:
    key, value = item
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidEvent(f"expected an array of strings, got {_kind(value)}", field=key)
    if len(value) > limits.max_tags:
        raise InvalidEvent(f"has {len(value)} tags; at most {limits.max_tags} are accepted", field=key)
    return [_string((f"{key}[{i}]", tag), limits.max_tag_chars) for i, tag in enumerate(value)]


def _properties(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"expected a JSON object, got {_kind(value)}", field=key)
    return value


def _check_properties(properties: dict[str, Any], limits: Limits) -> None:
    """Depth, count and key length of the whole properties tree, without recursion."""
    if _flat_and_within(properties, limits):
        return
    count = 0
    stack: list[tuple[str, Any, int]] = [("properties", properties, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > limits.max_property_depth:
                raise InvalidEvent(
                    f"nesting is deeper than {limits.max_property_depth} levels", field=path
                )
            for key, child in value.items():
                count += 1
                if len(key) > limits.max_property_key_chars:
                    raise InvalidEvent(
                        f"has a key of {len(key)} characters; at most {limits.max_property_key_chars} are accepted",
                        field=path,
                    )
                stack.append((f"{path}.{key}", child, depth + 1))
        elif isinstance(value, list):
            if depth > limits.max_property_depth:
                raise InvalidEvent(
                    f"nesting is deeper than {limits.max_property_depth} levels", field=path
                )
            count += len(value)
            stack.extend((f"{path}[{i}]", child, depth + 1) for i, child in enumerate(value))
        if count > limits.max_properties:
            raise InvalidEvent(
                f"have more than {limits.max_properties} keys and items in all", field="properties"
            )


def _flat_and_within(properties: dict[str, Any], limits: Limits) -> bool:
    """The common case, checked without walking: no nesting, few keys, short keys."""
    return (
        len(properties) <= limits.max_properties
        and limits.max_property_depth >= 1
        and not any(type(value) in (dict, list) for value in properties.values())
        and all(len(key) <= limits.max_property_key_chars for key in properties)
    )


Id = str | int | None
Text = str | None
Time = str | int | float | None


class _Known(msgspec.Struct, forbid_unknown_fields=True):
    """An event that uses only the names of ALIASES (typed loosely enough to never refuse a valid one).

    The preferred name of each field first, in `_CANONICAL` order, then `metadata`, then the other names.
    """

    event_type: Text | UnsetType = UNSET
    event_id: Id | UnsetType = UNSET
    user_id: Id | UnsetType = UNSET
    anonymous_id: Id | UnsetType = UNSET
    session_id: Id | UnsetType = UNSET
    url: Text | UnsetType = UNSET
    referrer: Text | UnsetType = UNSET
    channel: Text | UnsetType = UNSET
    campaign_id: Text | UnsetType = UNSET
    timestamp: Time | UnsetType = UNSET
    tags: list[str] | None | UnsetType = UNSET
    properties: dict[str, Any] | None | UnsetType = UNSET
    metadata: dict[str, Any] | None | UnsetType = UNSET
    event_name: Text | UnsetType = UNSET
    event: Text | UnsetType = UNSET
    action: Text | UnsetType = UNSET
    message_id: Id | UnsetType = UNSET
    messageId: Id | UnsetType = UNSET  # noqa: N815 (the client's name)
    insert_id: Id | UnsetType = UNSET
    dollar_insert_id: Id | UnsetType = msgspec.field(default=UNSET, name="$insert_id")
    userId: Id | UnsetType = UNSET  # noqa: N815
    distinct_id: Id | UnsetType = UNSET
    anonymousId: Id | UnsetType = UNSET  # noqa: N815
    sessionId: Id | UnsetType = UNSET  # noqa: N815
    page_url: Text | UnsetType = UNSET
    pageUrl: Text | UnsetType = UNSET  # noqa: N815
    referer: Text | UnsetType = UNSET
    campaignId: Text | UnsetType = UNSET  # noqa: N815
    ts: Time | UnsetType = UNSET


_decode_known = msgspec.json.Decoder(_Known).decode
_CANONICAL = tuple(ALIASES)
_FIRST_OTHER = len(_CANONICAL) + 1  # after metadata
_OTHER_NAMES = len(_Known.__struct_fields__) - _FIRST_OTHER
_POSITION = {name: i for i, name in enumerate(_Known.__struct_encode_fields__)}
_NAMES_AT = [tuple(_POSITION[name] for name in names) for names in ALIASES.values()][:-1]
"""Where each field's names are, but `properties`: its other name, metadata, is merged, not an alternative."""
assert _Known.__struct_encode_fields__[: len(_CANONICAL)] == _CANONICAL and _CANONICAL[-1] == "properties"


def _by_field(known: _Known) -> list[Any] | None:
    """Values in `_CANONICAL` order whichever name each came under (then metadata); None if a field has two."""
    values = list(msgspec.structs.astuple(known))
    if values[_FIRST_OTHER:].count(UNSET) == _OTHER_NAMES:
        return values
    for field, positions in enumerate(_NAMES_AT):
        given = [values[at] for at in positions if values[at] is not UNSET]
        if len(given) > 1:
            return None
        values[field] = given[0] if given else UNSET
    return values


def _text(value: Any, max_chars: int) -> str | None:
    """A present field's text as `normalize` makes it; None when `normalize` would refuse it."""
    if value is None:
        return ""
    if type(value) is int:
        value = str(value)
    return value if len(value) <= max_chars else None


def _normalize_known(raw: bytes | msgspec.Raw, context: RequestContext, limits: Limits) -> Event | None:
    """`normalize`'s event for `raw` when it is a plainly valid one of known names, else None (see normalize_raw)."""
    try:
        values = _by_field(_decode_known(raw))
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    if values is None:
        return None
    (event_type, event_id, user_id, anonymous_id, session_id, url, referrer, channel, campaign_id, raw_time,
     tags, properties, metadata) = values[:_FIRST_OTHER]
    if type(event_type) is not str or len(event_type) > limits.max_name_chars or not (event_type := event_type.strip()):
        return None
    texts = []
    for value, max_chars in (
        (user_id, limits.max_id_chars), (anonymous_id, limits.max_id_chars), (session_id, limits.max_id_chars),
        (url, limits.max_url_chars), (referrer, limits.max_url_chars), (channel, limits.max_name_chars),
        (campaign_id, limits.max_name_chars),
    ):
        text = "" if value is UNSET else _text(value, max_chars)
        if text is None:
            return None
        texts.append(text)
    if not (texts[0] or texts[1]):
        return None
    if event_id is not UNSET and not (event_id := _text(event_id, limits.max_id_chars)):
        return None
    timestamp = context.received_at
    if raw_time is not UNSET and raw_time is not None:
        try:
            timestamp = parse_time(raw_time)
            check_event_time(timestamp, context.received_at)
        except ValueError:
            return None
    if tags is UNSET or tags is None:
        tags = []
    elif len(tags) > limits.max_tags or any(len(tag) > limits.max_tag_chars for tag in tags):
        return None
    metadata = {} if metadata is UNSET or metadata is None else metadata
    properties = metadata if properties is UNSET else {**metadata, **(properties or {})}
    if not _flat_and_within(properties, limits):
        try:
            _check_properties(properties, limits)
        except InvalidEvent:
            return None
    return Event(
        event_id=new_event_id(context.received_at) if event_id is UNSET else event_id,
        generated_id=event_id is UNSET,
        event_type=event_type,
        timestamp=timestamp,
        received_at=context.received_at,
        user_id=texts[0],
        anonymous_id=texts[1],
        session_id=texts[2],
        url=texts[3],
        referrer=texts[4],
        channel=texts[5],
        campaign_id=texts[6],
        tags=tags,
        properties=properties,
        ip=context.ip,
        project_id=context.project_id,
        user_agent=context.user_agent[: limits.max_url_chars],
    )


def _kind(value: Any) -> str:
    return {
        dict: "an object", list: "an array", str: "a string", bool: "a boolean",
        int: "a number", float: "a number", type(None): "null",
    }.get(type(value), type(value).__name__)
