"""Stored records, writes against them, and the change log entries they produce."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import NamedTuple

from registry.identifier import Handle
from registry.values import AdminRef, Permissions, Value, ValueData, ValueList, ValueRef


@dataclass(frozen=True, slots=True)
class Record:
    """An identifier and its values as stored.

    ``etag`` names this exact state: it is the change-log sequence of the record's last
    write, so it is unique across deletes and re-registrations.
    """

    handle: Handle
    values: tuple[Value, ...]
    version: int
    sequence: int
    updated_at: int

    @property
    def etag(self) -> str:
        return etag_of(self.sequence)

    def min_ttl(self) -> int:
        return min((v.ttl for v in self.values), default=0)


_ETAG = re.compile(r"s(?:0|[1-9a-f][0-9a-f]{0,15})")


def etag_of(sequence: int) -> str:
    return f"s{sequence:x}"


def parse_etag(etag: str) -> int | None:
    """The sequence an etag names, or None for anything that is not one of ours."""
    if _ETAG.fullmatch(etag) is None:  # exactly what etag_of writes: s0x36 is not s36
        return None
    return int(etag[1:], 16)


class Operation(enum.Enum):
    REGISTER = "register"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Precondition:
    """What must hold before a write: the identifier is absent, or has this sequence."""

    absent: bool = False
    sequence: int | None = None


ABSENT = Precondition(absent=True)


@dataclass(frozen=True, slots=True)
class RequestKey:
    """An idempotency key: ``request_id`` scoped to a principal, and the request's digest."""

    scope: str
    request_id: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class AuditContext:
    """What the audit row of a write records beyond the write itself: the client's
    address, the front door it came through, and the action the caller asked for (empty:
    the write's operation, e.g. an HTTP PUT that turned into a register). ``detail`` goes
    to the row's message (a grant or revoke lists what changed)."""

    peer: str = ""
    door: str = ""
    action: str = ""
    detail: str = ""


NO_AUDIT_CONTEXT = AuditContext()


class Write(NamedTuple):
    """One atomic write: the new values (``None`` deletes the identifier). The store
    commits its audit row with it (see :mod:`registry.audit`) from ``principal``,
    ``request`` and ``audit``."""

    operation: Operation
    handle: Handle
    values: tuple[Value, ...] | None
    precondition: Precondition
    principal: str
    request: RequestKey | None = None
    audit: AuditContext | None = None


class WriteResult(NamedTuple):
    """``handle`` as registered (for display); ``key`` normalised (for caches)."""

    handle: str
    version: int
    etag: str
    sequence: int
    replayed: bool = False
    key: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the ordered change log that mirrors and the top-level node follow."""

    sequence: int
    operation: Operation
    handle: str
    key: str
    version: int
    values: tuple[Value, ...]
    committed_at: int
    principal: str
    request_id: str
    client_address: str = ""
    door: str = ""


# --- a compact JSON codec for change-log snapshots ---------------------------------------
# A value is one array: [index, type, ttl, timestamp, permission bits, kind, data] with
# kind "s" (text), "b" (hex bytes), "a" (admin: [handle, index, permissions]) or
# "v" (a value list: [[handle, index], ...]). Arrays,
# not objects: bulk imports write one snapshot per identifier, and this is their cost.

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def value_to_json(v: Value) -> list[object]:
    head: list[object] = [v.index, v.type, v.ttl, v.timestamp, v.permissions.to_bits()]
    if isinstance(v.data, str):
        return [*head, "s", v.data]
    if isinstance(v.data, bytes):
        return [*head, "b", v.data.hex()]
    if isinstance(v.data, ValueList):
        return [*head, "v", [[r.handle, r.index] for r in v.data.refs]]
    return [*head, "a", [v.data.handle, v.data.index, v.data.permissions]]


def value_from_json(item: list[object]) -> Value:
    index, type_, ttl, timestamp, bits, kind, raw = item
    data: ValueData
    if kind == "s":
        data = str(raw)
    elif kind == "b":
        data = bytes.fromhex(str(raw))
    elif kind == "v":
        assert isinstance(raw, list)
        data = ValueList(tuple(ValueRef(str(r[0]), int(r[1])) for r in raw))
    else:
        assert isinstance(raw, list)
        data = AdminRef(str(raw[0]), int(raw[1]), str(raw[2]))
    return Value(int(str(index)), str(type_), data, int(str(ttl)), int(str(timestamp)),
                 Permissions.from_bits(int(str(bits))))


def values_to_json(values: tuple[Value, ...]) -> str:
    return _ENCODER.encode([value_to_json(v) for v in values])


def values_from_json(text: str) -> tuple[Value, ...]:
    return tuple(value_from_json(item) for item in json.loads(text))
