"""The signed payload: a record as the contract's ``idnode.v1.Record`` message.

Every door ships the same signed bytes (gRPC as is, HTTP base64-encoded), so encoding
the payload belongs to the core, not to a door.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from idnode.v1 import record_pb2, sync_pb2
from registry.errors import InvalidValue
from registry.record import Change, Operation, Record
from registry.values import (
    DEFAULT_PERMISSIONS,
    AdminRef,
    Permissions,
    Value,
    ValueData,
    ValueList,
    ValueRef,
)


def value_to_wire(v: Value, out: record_pb2.Value) -> None:
    out.index = v.index
    out.type = v.type
    if isinstance(v.data, str):
        out.text = v.data
    elif isinstance(v.data, bytes):
        out.binary = v.data
    elif isinstance(v.data, ValueList):
        for ref in v.data.refs:
            out.vlist.refs.add(handle=ref.handle, index=ref.index)
    else:
        out.admin.handle = v.data.handle
        out.admin.index = v.data.index
        out.admin.permissions = v.data.permissions
    out.ttl = v.ttl
    out.timestamp.seconds = v.timestamp
    p = v.permissions
    out.permissions.admin_read = p.admin_read
    out.permissions.admin_write = p.admin_write
    out.permissions.public_read = p.public_read
    out.permissions.public_write = p.public_write


def value_from_wire(msg: record_pb2.Value) -> Value:
    """The inverse of :func:`value_to_wire`: a wire value (a request's, or one of a signed
    payload's) in the domain; no data is InvalidValue, no permissions the default."""
    kind = msg.WhichOneof("data")
    data: ValueData
    if kind == "text":
        data = msg.text
    elif kind == "binary":
        data = bytes(msg.binary)
    elif kind == "admin":
        data = AdminRef(msg.admin.handle, msg.admin.index, msg.admin.permissions)
    elif kind == "vlist":
        data = ValueList(tuple(ValueRef(r.handle, r.index) for r in msg.vlist.refs))
    else:
        raise InvalidValue(f"value at index {msg.index} has no data "
                           "(set text, binary, admin or vlist)")
    perms = DEFAULT_PERMISSIONS
    if msg.HasField("permissions"):
        p = msg.permissions
        perms = Permissions.from_bits(p.admin_read | p.admin_write << 1 | p.public_read << 2
                                      | p.public_write << 3)
    return Value(msg.index, msg.type, data, msg.ttl, 0, perms)


def record_to_wire(record: Record, values: Iterable[Value], *, node_id: str, signed_at: int,
                   expires_at: int) -> record_pb2.Record:
    msg = record_pb2.Record(handle=str(record.handle), version=record.version, node_id=node_id,
                            signed_at=Timestamp(seconds=signed_at),
                            expires_at=Timestamp(seconds=expires_at))
    for v in values:
        value_to_wire(v, msg.values.add())
    return msg


OPERATION_NUMBERS = {
    Operation.REGISTER: sync_pb2.Change.OPERATION_REGISTER,
    Operation.UPDATE: sync_pb2.Change.OPERATION_UPDATE,
    Operation.DELETE: sync_pb2.Change.OPERATION_DELETE,
}


def change_payload(change: Change, *, node_id: str, signed_at: int,
                   expires_at: int) -> record_pb2.Record:
    """The Record a change-feed entry signs: the handle, the values after the change
    (none on delete; secrets already left out by the feed) and the version, as a
    resolve of the whole record would sign it."""
    msg = record_pb2.Record(handle=change.handle, version=change.version, node_id=node_id,
                            signed_at=Timestamp(seconds=signed_at),
                            expires_at=Timestamp(seconds=expires_at))
    for v in change.values:
        value_to_wire(v, msg.values.add())
    return msg


def change_binding(store_id: str, sequence: int, operation: int) -> bytes:
    """What a change's second signature binds to SHA-256(payload): the log (store id),
    the position and the operation (its wire number), see ``idnode.v1.Change``."""
    return b"\x00".join((b"idnode-change", store_id.encode(), str(sequence).encode(),
                          str(operation).encode()))


__all__ = ["OPERATION_NUMBERS", "change_binding", "change_payload", "record_to_wire",
           "value_to_wire"]
