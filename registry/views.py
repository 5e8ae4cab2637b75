"""Which values of a record a caller gets to see."""

from __future__ import annotations

from collections.abc import Collection

from registry.access.rights import is_secret
from registry.values import Value


def visible(values: tuple[Value, ...], *, private_ok: bool, types: Collection[str] = (),
            indexes: Collection[int] = (), restricted: frozenset[int] = frozenset(),
            granted: frozenset[int] = frozenset()) -> tuple[Value, ...]:
    """Values readable by the caller, filtered by ``types`` or ``indexes`` (their union,
    as in the Handle REST API; no filter means every readable value).

    HS_SECKEY values (a secret's hash) are never readable, by anyone: they prove an
    identity and are otherwise the node's business alone. ``restricted`` are the indexes
    of items under data authorisation (registry.access.grants): without ``private_ok``
    a caller sees one only when it is in ``granted``, whatever its public_read."""
    if private_ok:
        out = tuple(v for v in values if not is_secret(v))
    elif restricted:
        out = tuple(v for v in values if not is_secret(v) and (
            v.index in granted if v.index in restricted else v.permissions.public_read))
    else:
        out = tuple(v for v in values if v.permissions.public_read and not is_secret(v))
    if types or indexes:
        out = tuple(v for v in out if v.type in types or v.index in indexes)
    return out


def without_secrets(values: tuple[Value, ...]) -> tuple[Value, ...]:
    """``values`` minus HS_SECKEY values, for answers that otherwise show everything
    (the change feed)."""
    if not any(is_secret(v) for v in values):
        return values
    return tuple(v for v in values if not is_secret(v))
