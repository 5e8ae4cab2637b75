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
Decisions are in docs/ARCHITECTURE.md, "Field-level data authorisation".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from registry.errors import InvalidArgument, InvalidIdentifier, InvalidValue
from registry.identifier import Handle
from registry.values import Value

if TYPE_CHECKING:
    from registry.access.principals import Principal
    from registry.access.rights import AdminView, RightsBook
    from registry.templates import Template

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


# --- evaluation ----------------------------------------------------------------------------

# index -> (ref key -> access), after the record's grants override the template's
Table = Mapping[int, Mapping[str, int]]
TemplateLookup = Callable[[str, str], "Template | None"]


def table_of(template: Template | None, grants: Sequence[DataGrant]) -> Table:
    """Who holds which access to each restricted item of one identifier."""
    if not grants and (template is None or not template.access):
        return {}
    out: dict[int, dict[str, int]] = {}
    if template is not None:
        for index, entries in template.access.items():
            out[index] = dict(entries)
    for g in grants:
        for index in g.items:
            out.setdefault(index, {})[g.ref_key] = g.access
    return out


class DataAccess:
    """Answers "which restricted items may this principal read / write on this
    identifier", from the rights book's cached admin views (which carry the record's
    template version and DATA_GRANT values) and the template book."""

    def __init__(self, book: RightsBook, templates: TemplateLookup) -> None:
        self.book = book
        self.templates = templates
        self._tables: dict[str, tuple[AdminView, Template | None, Table]] = {}
        self._lock = threading.Lock()

    def template_of(self, prefix_key: str, version: str) -> Template | None:
        return self.templates(prefix_key, version) if version else None

    def table(self, handle: Handle) -> Table:
        """The grant table of ``handle`` (empty: nothing restricted, or no such record)."""
        view = self.book.view(handle.key)
        if view is None or (not view.template_version and not view.data_grants):
            return {}
        template = self.template_of(handle.prefix_key, view.template_version)
        kept = self._tables.get(handle.key)
        if kept is not None and kept[0] is view and kept[1] is template:
            return kept[2]
        table = table_of(template, view.data_grants)
        with self._lock:
            if len(self._tables) >= 50_000:
                self._tables.clear()
            self._tables[handle.key] = (view, template, table)
        return table

    def settled(self, handle: Handle) -> bool:
        """False when the record names a template version this node does not have (an
        imported record): what was derived for it may change when the version appears,
        so it is not remembered."""
        view = self.book.view(handle.key)
        return view is None or not view.template_version or \
            self.template_of(handle.prefix_key, view.template_version) is not None

    def table_for(self, prefix_key: str, values: Sequence[Value], version: str) -> Table:
        """The grant table of a record just read (the resolve pipeline's miss path).

        Fails closed: a record naming a template version this node does not have (an
        imported or replicated record without its template) has every item restricted
        to read_value holders and the record's own grantees, since which items its
        template grants is unknown."""
        template = self.template_of(prefix_key, version)
        table = table_of(template, grant_values(values))
        if version and template is None:
            unknown: dict[int, Mapping[str, int]] = {
                v.index: {} for v in values if v.index >= MIN_ITEM_INDEX}
            unknown.update(table)
            return unknown
        return table

    def levels(self, principal: Principal | None, handle: Handle, table: Table,
               prefix_key: str) -> dict[int, int]:
        """The principal's access to each restricted item it holds any access to."""
        if principal is None or not table:
            return {}
        if principal.prefix_key is not None and principal.prefix_key != prefix_key:
            return {}
        member: dict[str, bool] = {}
        out: dict[int, int] = {}
        key = principal.key
        for index, entries in table.items():
            best = NONE
            for ref, access in entries.items():
                if access <= best:
                    continue
                found = member.get(ref)
                if found is None:
                    found = member[ref] = self.book.is_member(key, ref)
                if found:
                    best = access
            if best:
                out[index] = best
        return out

    def readable(self, principal: Principal | None, handle: Handle) -> frozenset[int]:
        """Restricted items of ``handle`` the principal may read (beyond read_value)."""
        table = self.table(handle)
        if not table or principal is None:
            return EMPTY
        return frozenset(self.levels(principal, handle, table, handle.prefix_key))

    def writable(self, principal: Principal | None, handle: Handle) -> frozenset[int]:
        """Restricted items whose value the principal may write (``rw``); a resolve
        token writes nothing."""
        if principal is None or principal.scope.value == "resolve":
            return EMPTY
        table = self.table(handle)
        levels = self.levels(principal, handle, table, handle.prefix_key)
        return frozenset(i for i, a in levels.items() if a >= WRITE)


def audience_id(granted: frozenset[int]) -> str:
    """The canonical name of a set of readable restricted items, part of a view's cache
    key: callers who may read the same items share one signed view."""
    return ",".join(str(i) for i in sorted(granted))


__all__ = [
    "GRANT_TYPE", "MAX_GRANT_INDEX", "MIN_GRANT_INDEX", "READ", "WRITE", "DataAccess",
    "DataGrant", "audience_id", "check_grant_values", "grant_changes", "grant_values",
    "is_grant_index", "parse_grant_value", "parse_item_grant", "table_of",
    "template_version",
]
