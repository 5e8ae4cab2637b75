"""Which values of a record a caller gets to see."""

from __future__ import annotations

from collections.abc import Collection

from registry.values import Value


def visible(values: tuple[Value, ...], *, private_ok: bool, types: Collection[str] = (),
            indexes: Collection[int] = ()) -> tuple[Value, ...]:
    """Values readable by the caller, filtered by ``types`` or ``indexes`` (their union,
    as in the Handle REST API; no filter means every readable value)."""
    out = values if private_ok else tuple(v for v in values if v.permissions.public_read)
    if types or indexes:
        out = tuple(v for v in out if v.type in types or v.index in indexes)
    return out
