"""Conversions between the wire (idnode.v1 messages) and the domain (registry values)."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from idnode.v1 import record_pb2, sync_pb2
from node.security.signing import PublishedKey
from registry.errors import InvalidValue
from registry.record import Change, Operation, Record
from registry.values import (
    DEFAULT_PERMISSIONS,
    AdminRef,
    Permissions,
    Value,
    ValueData,
)


def value_from_wire(msg: record_pb2.Value) -> Value:
    kind = msg.WhichOneof("data")
    data: ValueData
    if kind == "text":
        data = msg.text
    elif kind == "binary":
        data = bytes(msg.binary)
    elif kind == "admin":
        data = AdminRef(msg.admin.handle, msg.admin.index, msg.admin.permissions)
    else:
        raise InvalidValue(f"value at index {msg.index} has no data (set text, binary or admin)")
    perms = DEFAULT_PERMISSIONS
    if msg.HasField("permissions"):
        p = msg.permissions
        perms = Permissions.from_bits(p.admin_read | p.admin_write << 1 | p.public_read << 2
                                      | p.public_write << 3)
    return Value(msg.index, msg.type, data, msg.ttl, 0, perms)


def values_from_wire(msgs: Iterable[record_pb2.Value]) -> list[Value]:
    return [value_from_wire(m) for m in msgs]


def value_to_wire(v: Value, out: record_pb2.Value) -> None:
    out.index = v.index
    out.type = v.type
    if isinstance(v.data, str):
        out.text = v.data
    elif isinstance(v.data, bytes):
        out.binary = v.data
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


def record_to_wire(record: Record, values: Iterable[Value], *, node_id: str, signed_at: int,
                   expires_at: int) -> record_pb2.Record:
    msg = record_pb2.Record(handle=str(record.handle), version=record.version, node_id=node_id,
                            signed_at=Timestamp(seconds=signed_at),
                            expires_at=Timestamp(seconds=expires_at))
    for v in values:
        value_to_wire(v, msg.values.add())
    return msg


def keys_to_wire(keys: Iterable[PublishedKey]) -> list[record_pb2.SigningKey]:
    out = []
    for key in keys:
        msg = record_pb2.SigningKey(key_id=key.key_id, algorithm=key.algorithm,
                                    public_key=key.public_der, active=key.active,
                                    not_before=Timestamp(seconds=key.not_before))
        if key.not_after is not None:
            msg.not_after.seconds = key.not_after
        out.append(msg)
    return out


_OPERATIONS = {
    Operation.REGISTER: sync_pb2.Change.OPERATION_REGISTER,
    Operation.UPDATE: sync_pb2.Change.OPERATION_UPDATE,
    Operation.DELETE: sync_pb2.Change.OPERATION_DELETE,
}


def change_to_wire(change: Change) -> sync_pb2.Change:
    msg = sync_pb2.Change(sequence=change.sequence, operation=_OPERATIONS[change.operation],
                          handle=change.handle, version=change.version,
                          committed_at=Timestamp(seconds=change.committed_at))
    for v in change.values:
        value_to_wire(v, msg.values.add())
    return msg
