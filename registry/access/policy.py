"""The one access policy: the Handle permission model (RFC 3651 §3.5, as Handle.net and
the industrial-identifier SDKs implement it), evaluated the same way for every door.

Every use case asks ``policy.require(principal, permissions, identifier)`` (or one of
the prefix / node-wide variants); no caller looks at identities or prefixes itself.

**Evaluation order** for a principal and the permission bits an action needs on an
identifier ``H`` under prefix ``P`` (see docs/ARCHITECTURE.md, "Rights"):

1. No principal: refused with ``Unauthenticated`` (anonymous callers may only resolve
   public values, which never asks the policy).
2. A token bound to a prefix acts only on identifiers of exactly that prefix (and its
   prefix handle); elsewhere it has no bits.
3. The node admin ``300:<node prefix>/ADMIN`` has every bit on every identifier under
   the node prefix, and on the prefix handles of those prefixes.
4. Otherwise the bits are the union of the HS_ADMIN values on the prefix handle
   ``0.NA/P`` and on ``H`` itself that name the principal, directly or through HS_VLIST
   groups nested at most :data:`~registry.access.rights.MAX_GROUP_DEPTH` deep. For a
   prefix handle ``0.NA/P`` only its own HS_ADMIN values count: a derived prefix
   (``88.118.8.1``) is governed by its own prefix handle, never by its parent's.
5. The credential's scope masks the result: a ``resolve`` token keeps only read_value
   and list_handles, a ``write`` token loses the admin bits and the derived-prefix bits.
6. Every needed bit must be present; a refusal names the missing ones.

Node-wide actions (allocating prefixes, following the whole change log) belong to the
node admin alone; reviewing prefix applications needs add_derived_prefix on the node
prefix's own prefix handle ``0.NA/<node prefix>``.
"""

from __future__ import annotations

import enum
from typing import Protocol

from registry.access.principals import ADMIN_INDEX, ADMIN_SUFFIX, Principal, Scope
from registry.access.rights import PREFIX_HANDLE_PREFIX, RightsBook, governed_prefix
from registry.errors import PermissionDenied, Unauthenticated
from registry.identifier import Handle, Prefix


class Permission(enum.IntFlag):
    """The 12 HS_ADMIN permission bits; bit 0 is the rightmost character of the string."""

    ADD_HANDLE = 1 << 0
    DELETE_HANDLE = 1 << 1
    ADD_DERIVED_PREFIX = 1 << 2
    DELETE_DERIVED_PREFIX = 1 << 3
    MODIFY_VALUE = 1 << 4
    REMOVE_VALUE = 1 << 5
    ADD_VALUE = 1 << 6
    READ_VALUE = 1 << 7
    MODIFY_ADMIN = 1 << 8
    REMOVE_ADMIN = 1 << 9
    ADD_ADMIN = 1 << 10
    LIST_HANDLES = 1 << 11


# Plain ints from here on: IntFlag arithmetic builds enum members and costs about a
# microsecond per operation, which a rights check would pay several times.
ALL = 0xFFF
ADMIN_BITS = int(Permission.ADD_ADMIN | Permission.MODIFY_ADMIN | Permission.REMOVE_ADMIN)
DERIVED_BITS = int(Permission.ADD_DERIVED_PREFIX | Permission.DELETE_DERIVED_PREFIX)
WRITE_BITS = int(Permission.ADD_HANDLE | Permission.DELETE_HANDLE | Permission.ADD_VALUE
                 | Permission.MODIFY_VALUE | Permission.REMOVE_VALUE) | ADMIN_BITS
_PREFIX_HANDLES = PREFIX_HANDLE_PREFIX.lower()  # the prefix_key of every prefix handle
_SCOPE_MASK = {
    Scope.FULL: ALL,
    Scope.WRITE: ALL & ~ADMIN_BITS & ~DERIVED_BITS,
    Scope.RESOLVE: int(Permission.READ_VALUE | Permission.LIST_HANDLES),
}


def permission_string(bits: int) -> str:
    """``011111110011`` for a bit set (rightmost character is bit 0)."""
    return format(bits & 0xFFF, "012b")


def describe(bits: int) -> str:
    """Names of the set bits, lowest first: ``add_handle, modify_value``."""
    return ", ".join(p.name.lower() for p in Permission if bits & p and p.name)


class AccessPolicy(Protocol):
    """Decides who may do what; reads rights only through its cached
    :class:`~registry.access.rights.RightsBook`."""

    def is_node_admin(self, principal: Principal | None) -> bool: ...

    def permits(self, principal: Principal | None, needed: int, handle: Handle) -> bool: ...

    def prefix_bits(self, principal: Principal, prefix_key: str) -> int: ...

    def require(self, principal: Principal | None, needed: int, handle: Handle, *,
                doing: str) -> Principal: ...

    def require_any(self, principal: Principal | None, bits: int, handle: Handle, *,
                    doing: str) -> Principal: ...

    def require_prefix(self, principal: Principal | None, needed: int, prefix: Prefix, *,
                       doing: str) -> Principal: ...

    def require_node_admin(self, principal: Principal | None, *, doing: str) -> Principal: ...

    def require_reviewer(self, principal: Principal | None, *, doing: str) -> Principal: ...


class HandlePolicy:
    """The Handle permission model (see the module docstring for the order)."""

    def __init__(self, node_prefix: Prefix, book: RightsBook) -> None:
        self.node_prefix = node_prefix
        self.book = book
        self.node_admin_key = f"{ADMIN_INDEX}:{node_prefix.key}/{ADMIN_SUFFIX.lower()}"
        self.node_prefix_handle = Handle.parse(f"0.NA/{node_prefix.text}")

    def is_node_admin(self, principal: Principal | None) -> bool:
        return principal is not None and principal.key == self.node_admin_key \
            and principal.scope is Scope.FULL and principal.prefix_key is None

    def bits(self, principal: Principal, handle: Handle) -> int:
        """Every permission ``principal`` holds on ``handle`` (steps 2–5)."""
        governed = governed_prefix(handle)
        prefix_key = governed.key if governed is not None else handle.prefix_key
        if principal.prefix_key is not None and principal.prefix_key != prefix_key:
            return 0
        if principal.key == self.node_admin_key and self.node_prefix.contains(prefix_key):
            bits: int = ALL
        elif governed is not None:
            bits = self.book.granted(principal.key, self.book.view(handle.key))
        else:
            bits = self._prefix_grant(principal, prefix_key)
            if bits != ALL:
                bits |= self.book.granted(principal.key, self.book.view(handle.key))
        return bits & _SCOPE_MASK[principal.scope]

    def prefix_bits(self, principal: Principal, prefix_key: str) -> int:
        """The permissions ``principal`` holds on *every* identifier under ``prefix_key``
        (not ``0.NA`` itself): what the prefix handle grants, or the node admin's. An
        identifier's own HS_ADMIN values can only add to these (:meth:`bits`), so a bulk
        registration that finds add_handle here checks it once per prefix, not per row."""
        if principal.prefix_key is not None and principal.prefix_key != prefix_key:
            return 0
        if prefix_key == _PREFIX_HANDLES:
            return 0  # prefix handles: each is governed by itself (see bits)
        if principal.key == self.node_admin_key and self.node_prefix.contains(prefix_key):
            return ALL & _SCOPE_MASK[principal.scope]
        return self._prefix_grant(principal, prefix_key) & _SCOPE_MASK[principal.scope]

    def _prefix_grant(self, principal: Principal, prefix_key: str) -> int:
        return self.book.granted(principal.key, self.book.view("0.na/" + prefix_key))

    def permits(self, principal: Principal | None, needed: int, handle: Handle) -> bool:
        return principal is not None and int(needed) & ~self.bits(principal, handle) == 0

    def require(self, principal: Principal | None, needed: int, handle: Handle, *,
                doing: str) -> Principal:
        """The principal when it holds every bit of ``needed`` on ``handle``."""
        if principal is None:
            raise Unauthenticated(f"{doing} requires credentials (authorization metadata)")
        missing = int(needed) & ~self.bits(principal, handle)
        if missing:
            raise PermissionDenied(self._denial(principal, doing, missing, handle))
        return principal

    def require_any(self, principal: Principal | None, bits: int, handle: Handle, *,
                    doing: str) -> Principal:
        """The principal when it holds at least one bit of ``bits`` on ``handle``."""
        if principal is None:
            raise Unauthenticated(f"{doing} requires credentials (authorization metadata)")
        if not int(bits) & self.bits(principal, handle):
            raise PermissionDenied(self._denial(principal, doing, bits, handle, any_of=True))
        return principal

    def require_prefix(self, principal: Principal | None, needed: int, prefix: Prefix, *,
                       doing: str) -> Principal:
        """Rights over a whole prefix: those its prefix handle grants (or the node
        admin's), never a single identifier's own HS_ADMIN values."""
        return self.require(principal, needed, Handle.parse(f"0.NA/{prefix.text}"),
                            doing=doing)

    def require_node_admin(self, principal: Principal | None, *, doing: str) -> Principal:
        if principal is None:
            raise Unauthenticated(f"{doing} requires the node admin's credentials")
        if not self.is_node_admin(principal):
            raise PermissionDenied(f"only the node admin may {doing}")
        return principal

    def require_reviewer(self, principal: Principal | None, *, doing: str) -> Principal:
        """Reviewing prefix applications: add_derived_prefix on ``0.NA/<node prefix>``."""
        return self.require(principal, Permission.ADD_DERIVED_PREFIX, self.node_prefix_handle,
                            doing=doing)

    def _denial(self, principal: Principal, doing: str, missing: int, handle: Handle, *,
                any_of: bool = False) -> str:
        lacks = "holds no write rights" if any_of else f"lacks {describe(missing)}"
        text = f"{principal.id} may not {doing}: it {lacks} on {handle}"
        governed = governed_prefix(handle)
        prefix_key = governed.key if governed is not None else handle.prefix_key
        if principal.prefix_key is not None and principal.prefix_key != prefix_key:
            text += f" (its token is limited to prefix {principal.prefix_key})"
        elif missing & ~_SCOPE_MASK[principal.scope]:
            text += f" (its token's scope is {principal.scope.value})"
        return text


__all__ = [
    "ADMIN_BITS",
    "ALL",
    "WRITE_BITS",
    "AccessPolicy",
    "HandlePolicy",
    "Permission",
    "describe",
    "permission_string",
]
