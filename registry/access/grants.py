"""Field-level data authorisation (数据授权): who may read or write which item of a record.

Two sources, combined per identifier:

- **the template**: an item with a non-empty ``grants`` list is *restricted*; each entry
  names a principal or group ``index:handle`` and its access, ``r`` (read, the default)
  or ``rw`` (read and write): ``"300:88.118.8/PARTNER"``, ``"200:88.118.8/GROUP rw"``.
- **the record itself**: ``DATA_GRANT`` values at the reserved indexes 1100–1199, one
  principal or group each, Handle-like (an HS_ADMIN names one identity and its bits):
  ``"<index:handle> <r|rw|none> <item index>[,<item index>…]"``, e.g.
  ``"300:88.118.9/ADMIN rw 2001,2003"``. Being values, they travel with the record through
  the change feed, export/import and every door. Each names items (indexes ≥ 2000): those
  become restricted on this identifier even when the template leaves them public, and for
  the identity it names its access replaces the template's (``none`` takes a template
  grant away on this identifier); other identities keep the template's grant.

A restricted value is readable by callers holding read_value on the identifier (the Handle
admins, as for private values) and by the identities granted it, directly or through
HS_VLIST groups; anonymous callers never see it. A ``rw`` grantee may add, change or remove
that item's value. Everything else keeps the Handle rules (public_read, read_value).
Decisions are in docs/ARCHITECTURE.md, "Field-level data authorisation". This module is
the grammar (values, items, the audit detail); who may read what is evaluated in
:mod:`registry.access.data_access`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from registry.errors import InvalidArgument, InvalidIdentifier, InvalidValue
from registry.identifier import Handle
from registry.values import Value

GRANT_TYPE = "DATA_GRANT"
MIN_GRANT_INDEX = 1100  # DATA_GRANT values live at 1100..1199, and only they do
MAX_GRANT_INDEX = 1199
TEMPLATE_INDEX = 1001  # registry.templates.TEMPLATE_INDEX (which imports this module)
MIN_ITEM_INDEX = 2000  # the items a grant may name (templates' items start there)
MAX_GRANT_ITEMS = 128

NONE, READ, WRITE = 0, 1, 2
_ACCESS = {"r": READ, "read": READ, "rw": WRITE, "write": WRITE, "none": NONE, "-": NONE}
ACCESS_NAMES = {NONE: "none", READ: "r", WRITE: "rw"}
EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class DataGrant:
    """One DATA_GRANT value: ``ref_key`` (``index:handle key``) gets ``access`` to
    ``items`` of this identifier."""

    ref_key: str
    access: int
    items: tuple[int, ...]
    shown: str  # the identity as written, for messages and the audit log


def is_grant_index(index: int) -> bool:
    return MIN_GRANT_INDEX <= index <= MAX_GRANT_INDEX


def parse_identity_ref(text: str) -> str:
    """``index:handle`` → its normalised ref key; InvalidIdentifier when malformed."""
    index_text, sep, handle = text.partition(":")
    if not sep or not index_text.isdigit() or len(index_text) > 10:
        raise InvalidIdentifier("not index:handle")
    return f"{int(index_text)}:{Handle.parse(handle).key}"


def parse_item_grant(text: str) -> tuple[str, int]:
    """A template item's grant ``"index:handle"`` or ``"index:handle rw"`` → (ref key,
    access); InvalidArgument naming the problem."""
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        raise InvalidArgument("must be index:handle, optionally followed by r or rw")
    access = _ACCESS.get(parts[1].lower(), -1) if len(parts) == 2 else READ
    if access not in (READ, WRITE):
        raise InvalidArgument("access must be r (read) or rw (read and write)")
    try:
        return parse_identity_ref(parts[0]), access
    except InvalidIdentifier:
        raise InvalidArgument("must name a principal or group as index:handle, "
                              "e.g. 300:88.118.8/ADMIN") from None


def parse_grant_value(v: Value) -> DataGrant:
    """The DATA_GRANT value ``v`` (InvalidValue naming the problem)."""
    where = f"{GRANT_TYPE} at index {v.index}"
    if not isinstance(v.data, str):
        raise InvalidValue(f"{where} carries text: '<index:handle> <r|rw|none> <items>'")
    parts = v.data.split()
    if len(parts) != 3:
        raise InvalidValue(f"{where} must read '<index:handle> <r|rw|none> <item indexes>', "
                           "e.g. '300:88.118.9/ADMIN r 2001,2002'")
    who, access_text, items_text = parts
    try:
        ref = parse_identity_ref(who)
    except InvalidIdentifier:
        raise InvalidValue(f"{where} must name a principal or group as index:handle") from None
    access = _ACCESS.get(access_text.lower())
    if access is None:
        raise InvalidValue(f"{where}: access must be r, rw or none (got {access_text[:16]!r})")
    items: list[int] = []
    for part in items_text.split(","):
        if not part.isdigit() or len(part) > 10 or int(part) < MIN_ITEM_INDEX:
            raise InvalidValue(f"{where}: items are indexes of {MIN_ITEM_INDEX} or more, "
                               f"separated by commas (got {part[:16]!r})")
        items.append(int(part))
    if len(items) > MAX_GRANT_ITEMS:
        raise InvalidValue(f"{where} names more than {MAX_GRANT_ITEMS} items")
    return DataGrant(ref, access, tuple(sorted(set(items))), who)


def template_version(values: Iterable[Value]) -> str:
    """The version a record names at index 1001 ("" when none): only a lookup key here;
    registry.templates checks the reference on writes."""
    for v in values:
        if v.index == TEMPLATE_INDEX:
            return v.data if v.type == "TEMPLATE" and isinstance(v.data, str) else ""
    return ""


def grant_values(values: Iterable[Value]) -> tuple[DataGrant, ...]:
    """The record's DATA_GRANT values, parsed; malformed ones (from before the rule, or
    imported) grant nothing."""
    out: list[DataGrant] = []
    for v in values:
        if v.type == GRANT_TYPE and is_grant_index(v.index):
            try:
                out.append(parse_grant_value(v))
            except InvalidValue:
                continue
    return tuple(out)


def check_grant_values(values: Sequence[Value]) -> None:
    """Indexes 1100–1199 hold DATA_GRANT values only, and DATA_GRANT values live only
    there and are well formed; two values may not name the same identity."""
    # One comprehension over plain tuple fields: every write runs this, and almost no
    # record holds a grant.
    found = [v for v in values
             if v[1] == GRANT_TYPE or MIN_GRANT_INDEX <= v[0] <= MAX_GRANT_INDEX]
    if not found:
        return
    seen: dict[str, int] = {}
    for v in found:
        if not is_grant_index(v.index):
            raise InvalidValue(f"{GRANT_TYPE} values live at indexes {MIN_GRANT_INDEX}–"
                               f"{MAX_GRANT_INDEX} (got index {v.index})")
        if v.type != GRANT_TYPE:
            raise InvalidValue(f"indexes {MIN_GRANT_INDEX}–{MAX_GRANT_INDEX} are reserved "
                               f"for {GRANT_TYPE} values (got type {v.type[:32]!r} at "
                               f"{v.index})")
        grant = parse_grant_value(v)
        if grant.ref_key in seen:
            raise InvalidValue(f"{GRANT_TYPE} at index {v.index} names {grant.shown}, as "
                               f"index {seen[grant.ref_key]} does: one value per identity")
        seen[grant.ref_key] = v.index


def grant_changes(old: Sequence[Value], new: Sequence[Value]) -> tuple[str, str]:
    """The audit action and detail of a write that changes DATA_GRANT values: ("", "")
    when it changes none, "grant" when it adds or changes any, "revoke" when it only
    removes; the detail lists each change (``+300:88.1/P rw 2001; -300:88.1/Q``)."""
    before = {g.ref_key: g for g in grant_values(old)}
    after = {g.ref_key: g for g in grant_values(new)}
    if before == after:
        return "", ""
    parts: list[str] = []
    granted = False
    for key, g in after.items():
        if before.get(key) != g:
            granted = True
            parts.append(f"+{g.shown} {ACCESS_NAMES[g.access]} "
                         f"{','.join(str(i) for i in g.items)}")
    for key, g in before.items():
        if key not in after:
            parts.append(f"-{g.shown}")
    return ("grant" if granted else "revoke"), "; ".join(parts)


__all__ = [
    "ACCESS_NAMES", "EMPTY", "GRANT_TYPE", "MAX_GRANT_INDEX", "MIN_GRANT_INDEX", "NONE",
    "READ", "TEMPLATE_INDEX", "WRITE", "DataGrant", "check_grant_values", "grant_changes",
    "grant_values", "is_grant_index", "parse_grant_value", "parse_item_grant",
    "template_version",
]
