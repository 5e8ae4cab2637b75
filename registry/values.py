"""The Handle value model: typed, indexed values with permissions and a TTL.

Values are immutable and validated on construction through :func:`validate_values`,
which enforces the documented limits (see docs/ARCHITECTURE.md, "Limits").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, cast

from registry.access.principals import check_new_secret
from registry.errors import InvalidArgument, InvalidIdentifier, InvalidValue
from registry.identifier import Handle

DEFAULT_TTL_SECONDS = 86400
MAX_INDEX = 2**31 - 1
MAX_VALUES_PER_RECORD = 128
MAX_TYPE_CHARS = 128
MAX_DATA_BYTES = 64 * 1024
MAX_RECORD_DATA_BYTES = 256 * 1024
MAX_TTL_SECONDS = 2**32 - 1

ADMIN_TYPE = "HS_ADMIN"
VLIST_TYPE = "HS_VLIST"
SECKEY_TYPE = "HS_SECKEY"
MAX_VLIST_REFS = 1000
_TYPE = re.compile(r"[^\s\x00-\x1f\x7f]+")
_ADMIN_PERMS = re.compile(r"[01]{12}")
# Types seen to pass the checks: a handful ("URL", "productName", ...) repeat in nearly
# every record, so the regex runs once per type, not once per value.
_GOOD_TYPES: set[str] = set()
_MAX_GOOD_TYPES = 4096


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
        """One shared instance per combination (there are 16): cheap on hot paths."""
        return _BY_BITS[bits & 15]


_BY_BITS = [Permissions(bool(b & 1), bool(b & 2), bool(b & 4), bool(b & 8)) for b in range(16)]
DEFAULT_PERMISSIONS = _BY_BITS[7]  # admin read/write, public read: Permissions()


@dataclass(frozen=True, slots=True)
class AdminRef:
    """HS_ADMIN data: the admin identity ``index:handle`` and its 12-bit permission mask."""

    handle: str
    index: int
    permissions: str


@dataclass(frozen=True, slots=True)
class ValueRef:
    """One member of an HS_VLIST: the value at ``index`` of identifier ``handle``
    (a principal ``index:handle``, or another group)."""

    handle: str
    index: int


@dataclass(frozen=True, slots=True)
class ValueList:
    """HS_VLIST data: the members of a group, in order."""

    refs: tuple[ValueRef, ...]


ValueData = str | bytes | AdminRef | ValueList


class Value(NamedTuple):
    """One typed value of a record. ``timestamp`` is seconds since the epoch, set by the node.

    A NamedTuple rather than a frozen dataclass: imports build millions of these, and
    tuple construction costs a third as much.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index, deliberately (Handle name)
    type: str
    data: ValueData
    ttl: int = DEFAULT_TTL_SECONDS
    timestamp: int = 0
    permissions: Permissions = DEFAULT_PERMISSIONS

    def data_size(self) -> int:
        data = self.data
        if isinstance(data, str):
            return len(data) if data.isascii() else len(data.encode("utf-8"))
        if isinstance(data, bytes):
            return len(data)
        if isinstance(data, ValueList):
            return sum(len(r.handle.encode("utf-8")) + 4 for r in data.refs)
        return len(data.handle.encode("utf-8")) + 16


# Value(...) runs the NamedTuple's generated __new__ (a Python function with defaults);
# this builds the same tuple from all six fields in one C call, half the cost, where
# imports build millions: new_value(Value, (index, type, data, ttl, timestamp, perms)).
new_value = cast(
    Callable[[type[Value], tuple[int, str, ValueData, int, int, Permissions]], Value],
    tuple.__new__)


def _check_type(v: Value) -> bool:
    """Raise if the type breaks a rule; True when it is HS_SECKEY (in any case)."""
    if v.type in _GOOD_TYPES:
        return False
    where = f"value at index {v.index}"
    if not v.type:
        raise InvalidValue(f"{where} has an empty type")
    if len(v.type) > MAX_TYPE_CHARS:
        raise InvalidValue(f"{where} has a type longer than {MAX_TYPE_CHARS} characters")
    if _TYPE.fullmatch(v.type) is None:
        raise InvalidValue(f"{where} has a type with whitespace or control characters")
    if v.type.upper() == SECKEY_TYPE:
        return True  # never cached as good: its data is checked every time
    if len(_GOOD_TYPES) >= _MAX_GOOD_TYPES:
        _GOOD_TYPES.clear()
    _GOOD_TYPES.add(v.type)
    return False


def _check_secret(v: Value) -> None:
    """An HS_SECKEY carries a secret as text (or UTF-8 bytes); the node keeps only its
    salted hash, which passes this check too."""
    data = v.data
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValue(f"{SECKEY_TYPE} at index {v.index} is not UTF-8 text") from None
    if not isinstance(data, str):
        raise InvalidValue(f"{SECKEY_TYPE} at index {v.index} must carry the secret as text")
    try:
        check_new_secret(data)
    except InvalidArgument as exc:
        raise InvalidValue(f"{SECKEY_TYPE} at index {v.index}: {exc.message}") from None


def _check_admin(v: Value, data: AdminRef) -> None:
    where = f"value at index {v.index}"
    if v.type != ADMIN_TYPE:
        raise InvalidValue(f"{where}: admin data is only allowed in {ADMIN_TYPE} values")
    try:
        Handle.parse(data.handle)
    except InvalidIdentifier as exc:
        raise InvalidValue(f"{where}: admin handle is invalid: {exc.message}") from None
    if not 1 <= data.index <= MAX_INDEX:
        raise InvalidValue(f"{where}: admin index {data.index} is out of range")
    if _ADMIN_PERMS.fullmatch(data.permissions) is None:
        raise InvalidValue(f"{where}: admin permissions must be 12 characters of 0 and 1")


def _check_vlist(v: Value, data: ValueList) -> None:
    where = f"value at index {v.index}"
    if v.type != VLIST_TYPE:
        raise InvalidValue(f"{where}: a value list is only allowed in {VLIST_TYPE} values")
    if len(data.refs) > MAX_VLIST_REFS:
        raise InvalidValue(f"{where}: an {VLIST_TYPE} holds at most {MAX_VLIST_REFS} members")
    for ref in data.refs:
        try:
            Handle.parse(ref.handle)
        except InvalidIdentifier as exc:
            raise InvalidValue(f"{where}: member handle is invalid: {exc.message}") from None
        if not 1 <= ref.index <= MAX_INDEX:
            raise InvalidValue(f"{where}: member index {ref.index} is out of range")


def _check_value(v: Value) -> int:
    """Raise on the first rule ``v`` breaks; return its data size. Messages are built
    only on failure: imports validate millions of values."""
    if not 1 <= v.index <= MAX_INDEX:
        raise InvalidValue(f"value index {v.index} is out of range (1..{MAX_INDEX})")
    if _check_type(v):
        _check_secret(v)
    if not 0 <= v.ttl <= MAX_TTL_SECONDS:
        raise InvalidValue(
            f"value at index {v.index} has a ttl outside 0..{MAX_TTL_SECONDS} seconds")
    if isinstance(v.data, AdminRef):
        _check_admin(v, v.data)
    elif v.type == ADMIN_TYPE:
        raise InvalidValue(f"value at index {v.index}: {ADMIN_TYPE} values must carry admin data")
    elif isinstance(v.data, ValueList):
        _check_vlist(v, v.data)
    elif v.type == VLIST_TYPE:
        raise InvalidValue(f"value at index {v.index}: {VLIST_TYPE} values must carry a "
                           "value list")
    size = v.data_size()
    if size > MAX_DATA_BYTES:
        raise InvalidValue(f"value at index {v.index} has more than {MAX_DATA_BYTES} bytes of data")
    return size


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
        total += _check_value(v)
        if v.index in seen:
            raise InvalidValue(f"value index {v.index} appears more than once")
        seen.add(v.index)
    if total > MAX_RECORD_DATA_BYTES:
        raise InvalidValue(f"a record carries at most {MAX_RECORD_DATA_BYTES} bytes of data")
    return tuple(sorted(vals, key=_by_index))


def _by_index(v: Value) -> int:
    return v.index


_SPECIAL_TYPES = frozenset({ADMIN_TYPE, VLIST_TYPE})


def validate_stamped(values: Iterable[Value], now: int) -> tuple[tuple[Value, ...], bool]:
    """:func:`validate_values` then :func:`stamp` in one pass, for bulk registration
    (the same checks, the same messages, the same result), and whether every value is
    *plain*: no HS_SECKEY (nothing to seal), no HS_ADMIN or HS_VLIST (no reference to
    check). Imports are nearly all plain text, and this spares them three more passes."""
    vals = tuple(values)
    if not vals:
        raise InvalidValue("a record needs at least one value")
    if len(vals) > MAX_VALUES_PER_RECORD:
        raise InvalidValue(f"a record has at most {MAX_VALUES_PER_RECORD} values, got {len(vals)}")
    seen: set[int] = set()
    total = 0
    plain = True
    ordered = True  # indexes already ascending (a CSV's columns): no sort needed
    last = 0
    out: list[Value] = []
    good, special = _GOOD_TYPES, _SPECIAL_TYPES
    for v in vals:
        index, typ, data, ttl, _, perms = v
        # The usual value: text of a type seen to pass (_GOOD_TYPES holds no secret
        # type) that is neither HS_ADMIN nor HS_VLIST, index and ttl in range. Then
        # _check_value would only measure it; anything else goes through it in full
        # (same checks, same order, same messages).
        if type(data) is str and typ in good and typ not in special \
                and 0 < index <= MAX_INDEX and 0 <= ttl <= MAX_TTL_SECONDS:
            size = len(data) if data.isascii() else len(data.encode("utf-8"))
            if size > MAX_DATA_BYTES:
                raise InvalidValue(
                    f"value at index {index} has more than {MAX_DATA_BYTES} bytes of data")
            total += size
        else:
            total += _check_value(v)
            # A type in _GOOD_TYPES passed _check_type and is no secret (secrets are
            # never remembered); one missing (the set was just cleared) only costs the
            # slow path.
            if plain and (typ in special or typ not in good):
                plain = False
        if index in seen:
            raise InvalidValue(f"value index {index} appears more than once")
        seen.add(index)
        if index < last:
            ordered = False
        last = index
        out.append(new_value(Value, (index, typ, data, ttl or DEFAULT_TTL_SECONDS, now, perms)))
    if total > MAX_RECORD_DATA_BYTES:
        raise InvalidValue(f"a record carries at most {MAX_RECORD_DATA_BYTES} bytes of data")
    if not ordered:
        out.sort(key=_by_index)
    return tuple(out), plain


def stamp(values: Iterable[Value], now: int) -> tuple[Value, ...]:
    """The node sets each value's timestamp and resolves a 0 ttl to the default."""
    return tuple(
        Value(v.index, v.type, v.data, v.ttl or DEFAULT_TTL_SECONDS, now, v.permissions)
        for v in values)
