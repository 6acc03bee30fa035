import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("event_type", "user_id", "anonymous_id", "session_id", "event_id", "timestamp", "url", "referrer", "channel", "campaign_id", "tags", "properties")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    REFERRER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    user_id: str
    anonymous_id: str
    session_id: str
    event_id: str
    timestamp: _timestamp_pb2.Timestamp
    url: str
    referrer: str
    channel: str
    campaign_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    properties: _struct_pb2.Struct
    def __init__(self, event_type: _Optional[str] = ..., user_id: _Optional[str] = ..., anonymous_id: _Optional[str] = ..., session_id: _Optional[str] = ..., event_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., url: _Optional[str] = ..., referrer: _Optional[str] = ..., channel: _Optional[str] = ..., campaign_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class PublishEventRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

class PublishEventResponse(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class PublishEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("index", "status", "event_id", "code", "message", "field")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[EventResult.Status]
        ACCEPTED: _ClassVar[EventResult.Status]
        REJECTED: _ClassVar[EventResult.Status]
        FAILED: _ClassVar[EventResult.Status]
    STATUS_UNSPECIFIED: EventResult.Status
    ACCEPTED: EventResult.Status
    REJECTED: EventResult.Status
    FAILED: EventResult.Status
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: EventResult.Status
    event_id: str
    code: str
    message: str
    field: str
    def __init__(self, index: _Optional[int] = ..., status: _Optional[_Union[EventResult.Status, str]] = ..., event_id: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class PublishEventsResponse(_message.Message):
    __slots__ = ("accepted", "rejected", "failed", "results")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    failed: int
    results: _containers.RepeatedCompositeFieldContainer[EventResult]
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., failed: _Optional[int] = ..., results: _Optional[_Iterable[_Union[EventResult, _Mapping]]] = ...) -> None: ...
