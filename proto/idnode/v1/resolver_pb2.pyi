from idnode.v1 import record_pb2 as _record_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResolveRequest(_message.Message):
    __slots__ = ("handle", "types", "indexes", "nonce")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    types: _containers.RepeatedScalarFieldContainer[str]
    indexes: _containers.RepeatedScalarFieldContainer[int]
    nonce: bytes
    def __init__(self, handle: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., indexes: _Optional[_Iterable[int]] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ("record", "etag", "nonce_signature")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    NONCE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    record: _record_pb2.SignedRecord
    etag: str
    nonce_signature: bytes
    def __init__(self, record: _Optional[_Union[_record_pb2.SignedRecord, _Mapping]] = ..., etag: _Optional[str] = ..., nonce_signature: _Optional[bytes] = ...) -> None: ...

class BatchResolveRequest(_message.Message):
    __slots__ = ("handles",)
    HANDLES_FIELD_NUMBER: _ClassVar[int]
    handles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, handles: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchResolveResult(_message.Message):
    __slots__ = ("handle", "record", "error")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    handle: str
    record: _record_pb2.SignedRecord
    error: _record_pb2.ItemError
    def __init__(self, handle: _Optional[str] = ..., record: _Optional[_Union[_record_pb2.SignedRecord, _Mapping]] = ..., error: _Optional[_Union[_record_pb2.ItemError, _Mapping]] = ...) -> None: ...

class BatchResolveResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResolveResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResolveResult, _Mapping]]] = ...) -> None: ...

class GetSigningKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSigningKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[_record_pb2.SigningKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[_record_pb2.SigningKey, _Mapping]]] = ...) -> None: ...
