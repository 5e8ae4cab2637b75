"""Stored records, writes against them, and the change log entries they produce."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from registry.identifier import Handle
from registry.values import AdminRef, Permissions, Value


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


def etag_of(sequence: int) -> str:
    return f"s{sequence:x}"


def parse_etag(etag: str) -> int | None:
    """The sequence an etag names, or None for anything that is not one of ours."""
    if len(etag) < 2 or etag[0] != "s":
        return None
    try:
        return int(etag[1:], 16)
    except ValueError:
        return None


class Operation(enum.Enum):
    REGISTER = "register"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Precondition:
    """What must hold before a write: the identifier is absent, or has this sequence."""

    absent: bool = False
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class RequestKey:
    """An idempotency key: ``request_id`` scoped to a principal, and the request's digest."""

    scope: str
    request_id: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Write:
    """One atomic write: the new values (``None`` deletes the identifier)."""

    operation: Operation
    handle: Handle
    values: tuple[Value, ...] | None
    precondition: Precondition
    principal: str
    request: RequestKey | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    handle: str
    version: int
    etag: str
    sequence: int
    replayed: bool = False


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


# --- a compact JSON codec, used for the change log and the L2 cache of the domain -------

def value_to_json(v: Value) -> dict[str, object]:
    out: dict[str, object] = {"i": v.index, "t": v.type, "ttl": v.ttl, "ts": v.timestamp,
                              "p": v.permissions.to_bits()}
    if isinstance(v.data, str):
        out["s"] = v.data
    elif isinstance(v.data, bytes):
        out["b"] = v.data.hex()
    else:
        out["a"] = [v.data.handle, v.data.index, v.data.permissions]
    return out


def value_from_json(d: dict[str, object]) -> Value:
    data: str | bytes | AdminRef
    if "s" in d:
        data = str(d["s"])
    elif "b" in d:
        data = bytes.fromhex(str(d["b"]))
    else:
        a = d["a"]
        assert isinstance(a, list)
        data = AdminRef(str(a[0]), int(a[1]), str(a[2]))
    return Value(int(str(d["i"])), str(d["t"]), data, int(str(d["ttl"])), int(str(d["ts"])),
                 Permissions.from_bits(int(str(d["p"]))))


def values_to_json(values: tuple[Value, ...]) -> str:
    return json.dumps([value_to_json(v) for v in values], ensure_ascii=False,
                      separators=(",", ":"))


def values_from_json(text: str) -> tuple[Value, ...]:
    return tuple(value_from_json(d) for d in json.loads(text))
