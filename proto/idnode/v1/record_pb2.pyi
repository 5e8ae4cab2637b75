import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Permissions(_message.Message):
    __slots__ = ("admin_read", "admin_write", "public_read", "public_write")
    ADMIN_READ_FIELD_NUMBER: _ClassVar[int]
    ADMIN_WRITE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_READ_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_WRITE_FIELD_NUMBER: _ClassVar[int]
    admin_read: bool
    admin_write: bool
    public_read: bool
    public_write: bool
    def __init__(self, admin_read: bool = ..., admin_write: bool = ..., public_read: bool = ..., public_write: bool = ...) -> None: ...

class AdminRef(_message.Message):
    __slots__ = ("handle", "index", "permissions")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    handle: str
    index: int
    permissions: str
    def __init__(self, handle: _Optional[str] = ..., index: _Optional[int] = ..., permissions: _Optional[str] = ...) -> None: ...

class ValueRef(_message.Message):
    __slots__ = ("handle", "index")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    handle: str
    index: int
    def __init__(self, handle: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class ValueList(_message.Message):
    __slots__ = ("refs",)
    REFS_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.RepeatedCompositeFieldContainer[ValueRef]
    def __init__(self, refs: _Optional[_Iterable[_Union[ValueRef, _Mapping]]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("index", "type", "text", "binary", "admin", "vlist", "ttl", "timestamp", "permissions")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    VLIST_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    type: str
    text: str
    binary: bytes
    admin: AdminRef
    vlist: ValueList
    ttl: int
    timestamp: _timestamp_pb2.Timestamp
    permissions: Permissions
    def __init__(self, index: _Optional[int] = ..., type: _Optional[str] = ..., text: _Optional[str] = ..., binary: _Optional[bytes] = ..., admin: _Optional[_Union[AdminRef, _Mapping]] = ..., vlist: _Optional[_Union[ValueList, _Mapping]] = ..., ttl: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., permissions: _Optional[_Union[Permissions, _Mapping]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("handle", "values", "version", "node_id", "signed_at", "expires_at")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    handle: str
    values: _containers.RepeatedCompositeFieldContainer[Value]
    version: int
    node_id: str
    signed_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, handle: _Optional[str] = ..., values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., version: _Optional[int] = ..., node_id: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SignedRecord(_message.Message):
    __slots__ = ("payload", "signature", "key_id", "algorithm")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    key_id: str
    algorithm: str
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., algorithm: _Optional[str] = ...) -> None: ...

class SigningKey(_message.Message):
    __slots__ = ("key_id", "algorithm", "public_key", "not_before", "not_after", "active")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    algorithm: str
    public_key: bytes
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    active: bool
    def __init__(self, key_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., public_key: _Optional[bytes] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: bool = ...) -> None: ...

class Referral(_message.Message):
    __slots__ = ("prefix", "endpoints")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prefix: _Optional[str] = ..., endpoints: _Optional[_Iterable[str]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message", "violations")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ...) -> None: ...

class Violation(_message.Message):
    __slots__ = ("index", "type", "item", "rule", "value", "detail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    type: str
    item: str
    rule: str
    value: str
    detail: str
    def __init__(self, index: _Optional[int] = ..., type: _Optional[str] = ..., item: _Optional[str] = ..., rule: _Optional[str] = ..., value: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Violations(_message.Message):
    __slots__ = ("violations", "omitted")
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    OMITTED_FIELD_NUMBER: _ClassVar[int]
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    omitted: int
    def __init__(self, violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ..., omitted: _Optional[int] = ...) -> None: ...
