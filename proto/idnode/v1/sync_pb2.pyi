import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from idnode.v1 import record_pb2 as _record_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchChangesRequest(_message.Message):
    __slots__ = ("sequence", "prefix")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    prefix: str
    def __init__(self, sequence: _Optional[int] = ..., prefix: _Optional[str] = ...) -> None: ...

class WatchChangesResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: Change
    def __init__(self, change: _Optional[_Union[Change, _Mapping]] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("sequence", "operation", "handle", "values", "version", "committed_at", "principal", "request_id", "client_address", "door", "record", "change_signature", "store_id")
    class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OPERATION_UNSPECIFIED: _ClassVar[Change.Operation]
        OPERATION_REGISTER: _ClassVar[Change.Operation]
        OPERATION_UPDATE: _ClassVar[Change.Operation]
        OPERATION_DELETE: _ClassVar[Change.Operation]
    OPERATION_UNSPECIFIED: Change.Operation
    OPERATION_REGISTER: Change.Operation
    OPERATION_UPDATE: Change.Operation
    OPERATION_DELETE: Change.Operation
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DOOR_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    operation: Change.Operation
    handle: str
    values: _containers.RepeatedCompositeFieldContainer[_record_pb2.Value]
    version: int
    committed_at: _timestamp_pb2.Timestamp
    principal: str
    request_id: str
    client_address: str
    door: str
    record: _record_pb2.SignedRecord
    change_signature: bytes
    store_id: str
    def __init__(self, sequence: _Optional[int] = ..., operation: _Optional[_Union[Change.Operation, str]] = ..., handle: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_record_pb2.Value, _Mapping]]] = ..., version: _Optional[int] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ..., request_id: _Optional[str] = ..., client_address: _Optional[str] = ..., door: _Optional[str] = ..., record: _Optional[_Union[_record_pb2.SignedRecord, _Mapping]] = ..., change_signature: _Optional[bytes] = ..., store_id: _Optional[str] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PrefixStats(_message.Message):
    __slots__ = ("prefix", "identifiers", "resolutions")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    identifiers: int
    resolutions: int
    def __init__(self, prefix: _Optional[str] = ..., identifiers: _Optional[int] = ..., resolutions: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("prefixes", "identifiers", "resolutions", "sequence", "by_prefix")
    PREFIXES_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    prefixes: int
    identifiers: int
    resolutions: int
    sequence: int
    by_prefix: _containers.RepeatedCompositeFieldContainer[PrefixStats]
    def __init__(self, prefixes: _Optional[int] = ..., identifiers: _Optional[int] = ..., resolutions: _Optional[int] = ..., sequence: _Optional[int] = ..., by_prefix: _Optional[_Iterable[_Union[PrefixStats, _Mapping]]] = ...) -> None: ...
