"""The Handle value model: typed, indexed values with permissions and a TTL.

Values are immutable and validated on construction through :func:`validate_values`,
which enforces the documented limits (see docs/ARCHITECTURE.md, "Limits").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from registry.errors import InvalidIdentifier, InvalidValue
from registry.identifier import Handle

DEFAULT_TTL_SECONDS = 86400
MAX_INDEX = 2**31 - 1
MAX_VALUES_PER_RECORD = 128
MAX_TYPE_CHARS = 128
MAX_DATA_BYTES = 64 * 1024
MAX_RECORD_DATA_BYTES = 256 * 1024
MAX_TTL_SECONDS = 2**32 - 1

ADMIN_TYPE = "HS_ADMIN"
# Secrets are stored hashed by the node and never as values anyone could resolve.
FORBIDDEN_TYPES = frozenset({"HS_SECKEY"})
_TYPE = re.compile(r"[^\s\x00-\x1f\x7f]+")
_ADMIN_PERMS = re.compile(r"[01]{12}")


@dataclass(frozen=True, slots=True)
class Permissions:
    """Handle value permissions; the default is admin read/write and public read."""

    admin_read: bool = True
    admin_write: bool = True
    public_read: bool = True
    public_write: bool = False

    def to_bits(self) -> int:
        return (self.admin_read | self.admin_write << 1 | self.public_read << 2
                | self.public_write << 3)

    @classmethod
    def from_bits(cls, bits: int) -> Permissions:
        return cls(bool(bits & 1), bool(bits & 2), bool(bits & 4), bool(bits & 8))


DEFAULT_PERMISSIONS = Permissions()


@dataclass(frozen=True, slots=True)
class AdminRef:
    """HS_ADMIN data: the admin identity ``index:handle`` and its 12-bit permission mask."""

    handle: str
    index: int
    permissions: str


ValueData = str | bytes | AdminRef


@dataclass(frozen=True, slots=True)
class Value:
    """One typed value of a record. ``timestamp`` is seconds since the epoch, set by the node."""

    index: int
    type: str
    data: ValueData
    ttl: int = DEFAULT_TTL_SECONDS
    timestamp: int = 0
    permissions: Permissions = field(default=DEFAULT_PERMISSIONS)

    @property
    def public(self) -> bool:
        return self.permissions.public_read

    def data_size(self) -> int:
        if isinstance(self.data, str):
            return len(self.data.encode("utf-8"))
        if isinstance(self.data, bytes):
            return len(self.data)
        return len(self.data.handle.encode("utf-8")) + 16


def _check_value(v: Value) -> None:
    where = f"value at index {v.index}"
    if not 1 <= v.index <= MAX_INDEX:
        raise InvalidValue(f"value index {v.index} is out of range (1..{MAX_INDEX})")
    if not v.type:
        raise InvalidValue(f"{where} has an empty type")
    if len(v.type) > MAX_TYPE_CHARS:
        raise InvalidValue(f"{where} has a type longer than {MAX_TYPE_CHARS} characters")
    if _TYPE.fullmatch(v.type) is None:
        raise InvalidValue(f"{where} has a type with whitespace or control characters")
    if v.type in FORBIDDEN_TYPES:
        raise InvalidValue(
            f"{where}: {v.type} values are not accepted (secrets are kept hashed by the node)")
    if not 0 <= v.ttl <= MAX_TTL_SECONDS:
        raise InvalidValue(f"{where} has a ttl outside 0..{MAX_TTL_SECONDS} seconds")
    if isinstance(v.data, AdminRef):
        if v.type != ADMIN_TYPE:
            raise InvalidValue(f"{where}: admin data is only allowed in {ADMIN_TYPE} values")
        try:
            Handle.parse(v.data.handle)
        except InvalidIdentifier as exc:
            raise InvalidValue(f"{where}: admin handle is invalid: {exc.message}") from None
        if not 1 <= v.data.index <= MAX_INDEX:
            raise InvalidValue(f"{where}: admin index {v.data.index} is out of range")
        if _ADMIN_PERMS.fullmatch(v.data.permissions) is None:
            raise InvalidValue(f"{where}: admin permissions must be 12 characters of 0 and 1")
    elif v.type == ADMIN_TYPE:
        raise InvalidValue(f"{where}: {ADMIN_TYPE} values must carry admin data")
    if v.data_size() > MAX_DATA_BYTES:
        raise InvalidValue(f"{where} has more than {MAX_DATA_BYTES} bytes of data")


def validate_values(values: Iterable[Value], *, allow_empty: bool = False) -> tuple[Value, ...]:
    """Check every rule on a record's values; return them ordered by index."""
    vals = tuple(values)
    if not vals and not allow_empty:
        raise InvalidValue("a record needs at least one value")
    if len(vals) > MAX_VALUES_PER_RECORD:
        raise InvalidValue(f"a record has at most {MAX_VALUES_PER_RECORD} values, got {len(vals)}")
    seen: set[int] = set()
    total = 0
    for v in vals:
        _check_value(v)
        if v.index in seen:
            raise InvalidValue(f"value index {v.index} appears more than once")
        seen.add(v.index)
        total += v.data_size()
    if total > MAX_RECORD_DATA_BYTES:
        raise InvalidValue(f"a record carries at most {MAX_RECORD_DATA_BYTES} bytes of data")
    return tuple(sorted(vals, key=lambda v: v.index))


def stamp(values: Iterable[Value], now: int) -> tuple[Value, ...]:
    """The node sets each value's timestamp and resolves a 0 ttl to the default."""
    return tuple(
        Value(v.index, v.type, v.data, v.ttl or DEFAULT_TTL_SECONDS, now, v.permissions)
        for v in values)


def same_content(a: Value, b: Value) -> bool:
    """Equal apart from the node-set timestamp."""
    return (a.index, a.type, a.data, a.ttl, a.permissions) == (
        b.index, b.type, b.data, b.ttl, b.permissions)
