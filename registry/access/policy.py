"""The one access policy: every use case asks it ``(principal, action, target)``.

Callers never look at roles or prefixes themselves, so the rules can change in one place
(the Handle permission model — HS_ADMIN values, groups, per-identifier rights — replaces
:class:`PrefixRolePolicy` behind the same :class:`AccessPolicy` protocol).

Today's rules (:class:`PrefixRolePolicy`):

1. Anonymous callers may resolve public values and nothing else.
2. The node admin (``300:<node prefix>/ADMIN``) may do everything under the node prefix,
   including allocating enterprise prefixes and following the whole change log.
3. A prefix owner (``300:<prefix>/ADMIN``) may register, update, delete, list, read
   private values and follow the change log of its own prefix — exactly that prefix: a
   derived prefix (``88.118.8.1`` below ``88.118.8``) belongs to whoever it is allocated
   to, as in the Handle model, so the parent's owner can neither write, read nor
   follow it, nor squat ``88.118.8.2/ADMIN`` before ``88.118.8.2`` is allocated.
4. Everything else is refused: ``Unauthenticated`` without credentials,
   ``PermissionDenied`` with credentials that lack the right.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from registry.access.principals import Principal, Role
from registry.errors import PermissionDenied, Unauthenticated
from registry.identifier import Prefix


class Action(enum.Enum):
    """What a caller wants to do. Values name the Handle permission each maps to."""

    READ_PRIVATE = "read_value"
    REGISTER = "add_handle"
    UPDATE = "modify_value"
    DELETE = "delete_handle"
    LIST = "list_handles"
    FOLLOW = "follow"
    ALLOCATE_PREFIX = "add_derived_prefix"


# What a refused anonymous caller is told, per action (names the missing credentials).
_NEEDS_CREDENTIALS = {
    Action.READ_PRIVATE: "reading private values requires credentials",
    Action.REGISTER: "writing requires credentials (authorization metadata)",
    Action.UPDATE: "writing requires credentials (authorization metadata)",
    Action.DELETE: "writing requires credentials (authorization metadata)",
    Action.LIST: "listing identifiers requires credentials",
    Action.FOLLOW: "following the change log requires credentials",
    Action.ALLOCATE_PREFIX: "allocating a prefix requires the node admin's credentials",
}


@dataclass(frozen=True, slots=True)
class Target:
    """What an action applies to: a prefix (by normalised key) or, with ``None``, the
    whole node (allocating prefixes, following every change)."""

    prefix_key: str | None
    prefix_text: str = ""

    @classmethod
    def prefix(cls, prefix: Prefix) -> Target:
        return cls(prefix.key, prefix.text)

    @classmethod
    def node(cls) -> Target:
        return cls(None, "")


class AccessPolicy(Protocol):
    """Decides; never does I/O (rights data it needs is handed to it or cached)."""

    def allows(self, principal: Principal | None, action: Action, target: Target) -> bool:
        """Whether ``principal`` may do ``action`` on ``target`` (no error, for views)."""
        ...

    def check(self, principal: Principal | None, action: Action, target: Target) -> Principal:
        """The principal when allowed; Unauthenticated / PermissionDenied otherwise."""
        ...


def _covers(own_key: str, prefix_key: str) -> bool:
    return prefix_key == own_key or prefix_key.startswith(own_key + ".")


class PrefixRolePolicy:
    """Role-per-prefix rules (see the module docstring)."""

    def __init__(self, node_prefix: Prefix) -> None:
        self.node_prefix = node_prefix

    def allows(self, principal: Principal | None, action: Action, target: Target) -> bool:
        if principal is None:
            return False
        if principal.role is Role.NODE_ADMIN:
            return target.prefix_key is None or _covers(principal.prefix_key, target.prefix_key)
        if target.prefix_key is None or action is Action.ALLOCATE_PREFIX:
            return False
        return target.prefix_key == principal.prefix_key

    def check(self, principal: Principal | None, action: Action, target: Target) -> Principal:
        if principal is None:
            raise Unauthenticated(_NEEDS_CREDENTIALS[action])
        if self.allows(principal, action, target):
            return principal
        if action is Action.ALLOCATE_PREFIX:
            raise PermissionDenied("only the node admin may allocate prefixes")
        if target.prefix_key is None:
            raise PermissionDenied(f"only the node admin may {_WHOLE_NODE[action]}")
        raise PermissionDenied(f"{principal.id} has no rights on prefix {target.prefix_text}")


_WHOLE_NODE = {
    Action.FOLLOW: "follow the whole change log; set prefix to follow your own",
    Action.LIST: "list every identifier of the node",
    Action.READ_PRIVATE: "read every private value of the node",
    Action.REGISTER: "write anywhere on the node",
    Action.UPDATE: "write anywhere on the node",
    Action.DELETE: "write anywhere on the node",
    Action.ALLOCATE_PREFIX: "allocate prefixes",
}

__all__ = ["AccessPolicy", "Action", "PrefixRolePolicy", "Target"]
