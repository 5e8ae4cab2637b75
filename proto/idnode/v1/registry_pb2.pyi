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

class RegisterRequest(_message.Message):
    __slots__ = ("handle", "values", "request_id")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    handle: str
    values: _containers.RepeatedCompositeFieldContainer[_record_pb2.Value]
    request_id: str
    def __init__(self, handle: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_record_pb2.Value, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("handle", "version", "etag")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    handle: str
    version: int
    etag: str
    def __init__(self, handle: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("handle", "values", "etag", "mode", "request_id")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[UpdateRequest.Mode]
        MODE_REPLACE: _ClassVar[UpdateRequest.Mode]
        MODE_MERGE: _ClassVar[UpdateRequest.Mode]
    MODE_UNSPECIFIED: UpdateRequest.Mode
    MODE_REPLACE: UpdateRequest.Mode
    MODE_MERGE: UpdateRequest.Mode
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    handle: str
    values: _containers.RepeatedCompositeFieldContainer[_record_pb2.Value]
    etag: str
    mode: UpdateRequest.Mode
    request_id: str
    def __init__(self, handle: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_record_pb2.Value, _Mapping]]] = ..., etag: _Optional[str] = ..., mode: _Optional[_Union[UpdateRequest.Mode, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateResponse(_message.Message):
    __slots__ = ("handle", "version", "etag")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    handle: str
    version: int
    etag: str
    def __init__(self, handle: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("handle", "etag", "indexes", "request_id")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    handle: str
    etag: str
    indexes: _containers.RepeatedScalarFieldContainer[int]
    request_id: str
    def __init__(self, handle: _Optional[str] = ..., etag: _Optional[str] = ..., indexes: _Optional[_Iterable[int]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("handle", "version", "etag")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    handle: str
    version: int
    etag: str
    def __init__(self, handle: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("prefix", "page_size", "page_token")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    page_size: int
    page_token: str
    def __init__(self, prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("handles", "next_page_token")
    HANDLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    handles: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, handles: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class BulkRow(_message.Message):
    __slots__ = ("handle", "values")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    handle: str
    values: _containers.RepeatedCompositeFieldContainer[_record_pb2.Value]
    def __init__(self, handle: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_record_pb2.Value, _Mapping]]] = ...) -> None: ...

class BulkRegisterRequest(_message.Message):
    __slots__ = ("handle", "values", "rows", "report_unchanged")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    REPORT_UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    handle: str
    values: _containers.RepeatedCompositeFieldContainer[_record_pb2.Value]
    rows: _containers.RepeatedCompositeFieldContainer[BulkRow]
    report_unchanged: bool
    def __init__(self, handle: _Optional[str] = ..., values: _Optional[_Iterable[_Union[_record_pb2.Value, _Mapping]]] = ..., rows: _Optional[_Iterable[_Union[BulkRow, _Mapping]]] = ..., report_unchanged: bool = ...) -> None: ...

class BulkRegisterFailure(_message.Message):
    __slots__ = ("row", "handle", "error")
    ROW_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    row: int
    handle: str
    error: _record_pb2.ItemError
    def __init__(self, row: _Optional[int] = ..., handle: _Optional[str] = ..., error: _Optional[_Union[_record_pb2.ItemError, _Mapping]] = ...) -> None: ...

class BulkRegisterResponse(_message.Message):
    __slots__ = ("accepted", "failures", "unchanged")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    failures: _containers.RepeatedCompositeFieldContainer[BulkRegisterFailure]
    unchanged: int
    def __init__(self, accepted: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[BulkRegisterFailure, _Mapping]]] = ..., unchanged: _Optional[int] = ...) -> None: ...

class AllocatePrefixRequest(_message.Message):
    __slots__ = ("prefix", "owner_secret")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    OWNER_SECRET_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    owner_secret: str
    def __init__(self, prefix: _Optional[str] = ..., owner_secret: _Optional[str] = ...) -> None: ...

class AllocatePrefixResponse(_message.Message):
    __slots__ = ("prefix", "owner", "owner_secret")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OWNER_SECRET_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    owner: str
    owner_secret: str
    def __init__(self, prefix: _Optional[str] = ..., owner: _Optional[str] = ..., owner_secret: _Optional[str] = ...) -> None: ...

class Template(_message.Message):
    __slots__ = ("fields", "allow_other_types", "updated_at", "version", "state", "description", "industry_category", "industry_specific", "industry_trade", "industry_subclass", "object_type", "prefix", "created_at", "published_at", "withdrawn_at", "updated_by")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Template.State]
        STATE_DRAFT: _ClassVar[Template.State]
        STATE_PUBLISHED: _ClassVar[Template.State]
        STATE_WITHDRAWN: _ClassVar[Template.State]
    STATE_UNSPECIFIED: Template.State
    STATE_DRAFT: Template.State
    STATE_PUBLISHED: Template.State
    STATE_WITHDRAWN: Template.State
    class Field(_message.Message):
        __slots__ = ("type", "kind", "required", "pattern", "enum_values", "name", "id_index", "state", "min_length", "max_length", "minimum", "maximum", "precision", "date_format", "grants")
        class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            KIND_UNSPECIFIED: _ClassVar[Template.Field.Kind]
            KIND_STRING: _ClassVar[Template.Field.Kind]
            KIND_INT: _ClassVar[Template.Field.Kind]
            KIND_DECIMAL: _ClassVar[Template.Field.Kind]
            KIND_DATE: _ClassVar[Template.Field.Kind]
            KIND_URL: _ClassVar[Template.Field.Kind]
            KIND_ENUM: _ClassVar[Template.Field.Kind]
            KIND_FILE: _ClassVar[Template.Field.Kind]
            KIND_REFERENCE: _ClassVar[Template.Field.Kind]
        KIND_UNSPECIFIED: Template.Field.Kind
        KIND_STRING: Template.Field.Kind
        KIND_INT: Template.Field.Kind
        KIND_DECIMAL: Template.Field.Kind
        KIND_DATE: Template.Field.Kind
        KIND_URL: Template.Field.Kind
        KIND_ENUM: Template.Field.Kind
        KIND_FILE: Template.Field.Kind
        KIND_REFERENCE: Template.Field.Kind
        class ItemState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            ITEM_STATE_UNSPECIFIED: _ClassVar[Template.Field.ItemState]
            ITEM_STATE_ENABLED: _ClassVar[Template.Field.ItemState]
            ITEM_STATE_DISABLED: _ClassVar[Template.Field.ItemState]
        ITEM_STATE_UNSPECIFIED: Template.Field.ItemState
        ITEM_STATE_ENABLED: Template.Field.ItemState
        ITEM_STATE_DISABLED: Template.Field.ItemState
        TYPE_FIELD_NUMBER: _ClassVar[int]
        KIND_FIELD_NUMBER: _ClassVar[int]
        REQUIRED_FIELD_NUMBER: _ClassVar[int]
        PATTERN_FIELD_NUMBER: _ClassVar[int]
        ENUM_VALUES_FIELD_NUMBER: _ClassVar[int]
        NAME_FIELD_NUMBER: _ClassVar[int]
        ID_INDEX_FIELD_NUMBER: _ClassVar[int]
        STATE_FIELD_NUMBER: _ClassVar[int]
        MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
        MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
        MINIMUM_FIELD_NUMBER: _ClassVar[int]
        MAXIMUM_FIELD_NUMBER: _ClassVar[int]
        PRECISION_FIELD_NUMBER: _ClassVar[int]
        DATE_FORMAT_FIELD_NUMBER: _ClassVar[int]
        GRANTS_FIELD_NUMBER: _ClassVar[int]
        type: str
        kind: Template.Field.Kind
        required: bool
        pattern: str
        enum_values: _containers.RepeatedScalarFieldContainer[str]
        name: str
        id_index: int
        state: Template.Field.ItemState
        min_length: int
        max_length: int
        minimum: str
        maximum: str
        precision: int
        date_format: str
        grants: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, type: _Optional[str] = ..., kind: _Optional[_Union[Template.Field.Kind, str]] = ..., required: bool = ..., pattern: _Optional[str] = ..., enum_values: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., id_index: _Optional[int] = ..., state: _Optional[_Union[Template.Field.ItemState, str]] = ..., min_length: _Optional[int] = ..., max_length: _Optional[int] = ..., minimum: _Optional[str] = ..., maximum: _Optional[str] = ..., precision: _Optional[int] = ..., date_format: _Optional[str] = ..., grants: _Optional[_Iterable[str]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_OTHER_TYPES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INDUSTRY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    INDUSTRY_SPECIFIC_FIELD_NUMBER: _ClassVar[int]
    INDUSTRY_TRADE_FIELD_NUMBER: _ClassVar[int]
    INDUSTRY_SUBCLASS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[Template.Field]
    allow_other_types: bool
    updated_at: _timestamp_pb2.Timestamp
    version: str
    state: Template.State
    description: str
    industry_category: str
    industry_specific: str
    industry_trade: str
    industry_subclass: str
    object_type: int
    prefix: str
    created_at: _timestamp_pb2.Timestamp
    published_at: _timestamp_pb2.Timestamp
    withdrawn_at: _timestamp_pb2.Timestamp
    updated_by: str
    def __init__(self, fields: _Optional[_Iterable[_Union[Template.Field, _Mapping]]] = ..., allow_other_types: bool = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ..., state: _Optional[_Union[Template.State, str]] = ..., description: _Optional[str] = ..., industry_category: _Optional[str] = ..., industry_specific: _Optional[str] = ..., industry_trade: _Optional[str] = ..., industry_subclass: _Optional[str] = ..., object_type: _Optional[int] = ..., prefix: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., withdrawn_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ...) -> None: ...

class PutTemplateRequest(_message.Message):
    __slots__ = ("prefix", "template")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    template: Template
    def __init__(self, prefix: _Optional[str] = ..., template: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...

class PutTemplateResponse(_message.Message):
    __slots__ = ("prefix", "template")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    template: Template
    def __init__(self, prefix: _Optional[str] = ..., template: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...

class GetTemplateRequest(_message.Message):
    __slots__ = ("prefix", "version")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    version: str
    def __init__(self, prefix: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetTemplateResponse(_message.Message):
    __slots__ = ("prefix", "template")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    template: Template
    def __init__(self, prefix: _Optional[str] = ..., template: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...

class ListTemplatesRequest(_message.Message):
    __slots__ = ("prefix",)
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    def __init__(self, prefix: _Optional[str] = ...) -> None: ...

class ListTemplatesResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[Template]
    def __init__(self, templates: _Optional[_Iterable[_Union[Template, _Mapping]]] = ...) -> None: ...

class PublishTemplateRequest(_message.Message):
    __slots__ = ("prefix", "version")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    version: str
    def __init__(self, prefix: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PublishTemplateResponse(_message.Message):
    __slots__ = ("template",)
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    template: Template
    def __init__(self, template: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...

class WithdrawTemplateRequest(_message.Message):
    __slots__ = ("prefix", "version")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    version: str
    def __init__(self, prefix: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class WithdrawTemplateResponse(_message.Message):
    __slots__ = ("template",)
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    template: Template
    def __init__(self, template: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...
