"""Evaluating field-level data authorisation: which restricted items of one identifier a
principal may read or write, from its template's item grants and its DATA_GRANT values
(the grammar of both is :mod:`registry.access.grants`), through the rights book's cached
admin views. Kept apart from the grammar so the rights book and the templates, which
parse grants, do not import the evaluation that needs them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from registry.access.grants import (
    EMPTY,
    MIN_ITEM_INDEX,
    NONE,
    WRITE,
    DataGrant,
    grant_values,
)
from registry.identifier import Handle
from registry.values import Value

if TYPE_CHECKING:
    from registry.access.principals import Principal
    from registry.access.rights import AdminView, RightsBook
    from registry.templates import Template

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


__all__ = ["DataAccess", "Table", "TemplateLookup", "audience_id", "table_of"]
