"""What the access policy reads from records: HS_ADMIN grants, HS_VLIST groups, and which
indexes hold keys (HS_SECKEY / HS_PUBKEY), cached per identifier.

The policy asks about the same few records over and over (a prefix handle, an admin
group, the identifier being written), so their *admin views* are kept in a bounded
in-process map. The map is dropped per identifier whenever that identifier is written
(the node's coherence layer calls :meth:`RightsBook.forget` on the same events that drop
resolve answers: local writes, the host's change log, other hosts' invalidations), and an
answer read before such a drop is never kept (a generation check, as in the resolve
cache). Nothing here is on the anonymous resolve path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from registry.access.grants import (
    GRANT_TYPE,
    TEMPLATE_INDEX,
    DataGrant,
    grant_values,
    template_version,
)
from registry.errors import InvalidIdentifier
from registry.identifier import Handle, Prefix
from registry.record import Record
from registry.values import ADMIN_TYPE, SECKEY_TYPE, VLIST_TYPE, AdminRef, Value, ValueList

PUBKEY_TYPE = "HS_PUBKEY"
KEY_TYPES = frozenset({SECKEY_TYPE, PUBKEY_TYPE})
PREFIX_HANDLE_PREFIX = "0.NA"
_PREFIX_HANDLE_KEY = "0.na"
# How deep groups may nest (a group of groups of ... principals). Deeper members are
# not found, and writes that would need more are refused.
MAX_GROUP_DEPTH = 5
MAX_VIEWS = 50_000

Load = Callable[[str], Record | None]


def is_secret(value: Value) -> bool:
    """HS_SECKEY, as Handle clients spell it in any case."""
    return value.type.upper() == SECKEY_TYPE


@dataclass(frozen=True, slots=True)
class Grant:
    """One HS_ADMIN value: who (``ref_key`` = ``index:handle key``) gets which bits."""

    ref_key: str
    bits: int
    value_index: int


@dataclass(frozen=True, slots=True)
class AdminView:
    """The parts of a record that decide rights."""

    grants: tuple[Grant, ...]
    groups: dict[int, tuple[str, ...]]  # HS_VLIST index -> member ref keys
    key_indexes: frozenset[int]  # indexes holding an HS_SECKEY or HS_PUBKEY
    # What field-level data authorisation reads (registry.access.grants): the version
    # the record names at index 1001 ("" when none) and its DATA_GRANT values.
    template_version: str = ""
    data_grants: tuple[DataGrant, ...] = ()

    @classmethod
    def of(cls, values: Iterable[Value]) -> AdminView:
        grants: list[Grant] = []
        groups: dict[int, tuple[str, ...]] = {}
        keys: set[int] = set()
        version = ""
        data_grants: list[Value] = []
        for v in values:
            if v.type == "TEMPLATE" and v.index == TEMPLATE_INDEX:
                version = template_version((v,))
            elif v.type == GRANT_TYPE:
                data_grants.append(v)
            elif v.type == ADMIN_TYPE and isinstance(v.data, AdminRef):
                grants.append(Grant(ref_key(v.data.index, v.data.handle),
                                    int(v.data.permissions, 2), v.index))
            elif v.type == VLIST_TYPE and isinstance(v.data, ValueList):
                groups[v.index] = tuple(ref_key(r.index, r.handle) for r in v.data.refs)
            elif v.type.upper() in KEY_TYPES:
                keys.add(v.index)
        return cls(tuple(grants), groups, frozenset(keys), version,
                   grant_values(data_grants) if data_grants else ())

    def names(self, index: int) -> bool:
        """Whether ``index:<this identifier>`` is a principal or a group."""
        return index in self.key_indexes or index in self.groups


EMPTY_VIEW = AdminView((), {}, frozenset())


def ref_key(index: int, handle_text: str) -> str:
    """``index:handle key``: how principals and group references are compared."""
    return f"{index}:{Handle.parse(handle_text).key}"


def split_ref(key: str) -> tuple[int, str]:
    index, _, handle_key = key.partition(":")
    return int(index), handle_key


def prefix_handle(prefix: Prefix) -> Handle:
    """``0.NA/<prefix>``: the identifier whose HS_ADMIN values govern the prefix."""
    return Handle.parse(f"{PREFIX_HANDLE_PREFIX}/{prefix.text}")


def governed_prefix(handle: Handle) -> Prefix | None:
    """For a prefix handle ``0.NA/88.118.8``, the prefix it governs; else None."""
    if handle.prefix_key != _PREFIX_HANDLE_KEY:
        return None
    try:
        return Prefix.parse(handle.suffix)
    except InvalidIdentifier:  # a 0.NA suffix that is no prefix governs nothing
        return None


class RightsBook:
    """Admin views of records, loaded through ``load`` and cached until written."""

    def __init__(self, load: Load, max_views: int = MAX_VIEWS) -> None:
        self._load = load
        self._max = max_views
        self._views: OrderedDict[str, AdminView | None] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Bumped by every :meth:`forget` and :meth:`clear`: what was derived from views
        at one generation holds while it is unchanged."""
        return self._generation

    def view(self, handle_key: str) -> AdminView | None:
        """The admin view of the identifier, or None when it does not exist."""
        found = self._views.get(handle_key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        generation = self._generation
        record = self._load(handle_key)
        view = AdminView.of(record.values) if record is not None else None
        with self._lock:
            if generation == self._generation:
                self._views[handle_key] = view
                while len(self._views) > self._max:
                    self._views.popitem(last=False)
        return view

    def forget(self, handle_keys: Iterable[str]) -> None:
        """These identifiers were written: their views must be read again."""
        with self._lock:
            self._generation += 1
            for key in handle_keys:
                self._views.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._views.clear()

    def is_member(self, principal_key: str, ref: str, *, depth: int = 0,
                  seen: frozenset[str] = frozenset()) -> bool:
        """Whether ``principal_key`` is ``ref`` or, through HS_VLIST groups nested at most
        :data:`MAX_GROUP_DEPTH` deep, one of its members. Loops end at the first repeat."""
        if ref == principal_key:
            return True
        if depth >= MAX_GROUP_DEPTH or ref in seen:
            return False
        index, handle_key = split_ref(ref)
        view = self.view(handle_key)
        if view is None:
            return False
        members = view.groups.get(index)
        if not members:
            return False
        inner = seen | {ref}
        return any(self.is_member(principal_key, m, depth=depth + 1, seen=inner)
                   for m in members)

    def granted(self, principal_key: str, view: AdminView | None) -> int:
        """The union of the permission bits ``view``'s HS_ADMIN values give the principal."""
        if view is None:
            return 0
        bits = 0
        for grant in view.grants:
            if grant.bits & ~bits and self.is_member(principal_key, grant.ref_key):
                bits |= grant.bits
        return bits


_MISSING = object()

__all__ = ["EMPTY_VIEW", "AdminView", "Grant", "RightsBook", "governed_prefix", "is_secret",
           "prefix_handle", "ref_key"]
