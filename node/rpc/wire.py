"""Conversions between the wire (idnode.v1 messages) and the domain (registry values)."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from idnode.v1 import admin_pb2, record_pb2, sync_pb2
from node.security.signing import PublishedKey
from node.service.payload import (
    OPERATION_NUMBERS,
    record_to_wire,
    value_from_wire,
    value_to_wire,
)
from node.service.views import SignedChange
from registry.audit import AuditEntry
from registry.record import Change
from registry.values import (
    Value,
)


def values_from_wire(msgs: Iterable[record_pb2.Value]) -> list[Value]:
    return [value_from_wire(m) for m in msgs]


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


def change_to_wire(change: Change, signed: SignedChange | None = None) -> sync_pb2.Change:
    msg = sync_pb2.Change(sequence=change.sequence,
                          operation=OPERATION_NUMBERS[change.operation],
                          handle=change.handle, version=change.version,
                          committed_at=Timestamp(seconds=change.committed_at),
                          principal=change.principal, request_id=change.request_id,
                          client_address=change.client_address, door=change.door)
    for v in change.values:
        value_to_wire(v, msg.values.add())
    if signed is not None:
        msg.record.payload = signed.payload
        msg.record.signature = signed.signature
        msg.record.key_id = signed.key_id
        msg.record.algorithm = signed.algorithm
        msg.change_signature = signed.change_signature
        msg.store_id = signed.store_id
    return msg


def audit_entry_to_wire(entry: AuditEntry) -> admin_pb2.AuditEntry:
    return admin_pb2.AuditEntry(
        id=entry.id, time=Timestamp(seconds=entry.at), principal=entry.principal,
        action=entry.action, target=entry.target, request_id=entry.request_id,
        outcome=entry.outcome, client_address=entry.client_address, sequence=entry.sequence,
        door=entry.door, message=entry.message)


__all__ = ["audit_entry_to_wire", "change_to_wire", "keys_to_wire", "record_to_wire",
           "value_from_wire", "value_to_wire", "values_from_wire"]
