"""Tokens as table rows, shared by the SQL backends (same columns on both)."""

from __future__ import annotations

from typing import Any

from registry.access.principals import Scope
from registry.access.tokens import StoredToken

# Literal queries (no string building), in both parameter styles.
_SELECT = ("SELECT id, secret_hash, principal, principal_key, scope, prefix_key, prefix, "
           "created_at, expires_at, revoked_at, created_by, description FROM tokens ")
SQLITE = {
    "insert": "INSERT INTO tokens (id, secret_hash, principal, principal_key, scope, "
              "prefix_key, prefix, created_at, expires_at, revoked_at, created_by, "
              "description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "by_id": _SELECT + "WHERE id = ?",
    "by_principal": _SELECT + "WHERE principal_key = ? ORDER BY created_at, id",
    "revoke": "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
}
POSTGRES = {
    "insert": "INSERT INTO tokens (id, secret_hash, principal, principal_key, scope, "
              "prefix_key, prefix, created_at, expires_at, revoked_at, created_by, "
              "description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
              "ON CONFLICT DO NOTHING RETURNING 1",
    "by_id": _SELECT + "WHERE id = %s",
    "by_principal": _SELECT + "WHERE principal_key = %s ORDER BY created_at, id",
    "revoke": "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
}


def to_row(t: StoredToken) -> tuple[object, ...]:
    return (t.token_id, t.secret_hash, t.principal, t.principal_key, t.scope.value,
            t.prefix_key, t.prefix_text, t.created_at, t.expires_at, t.revoked_at,
            t.created_by, t.description)


def from_row(r: tuple[Any, ...]) -> StoredToken:
    return StoredToken(r[0], r[1], r[2], r[3], Scope(r[4]), r[5], r[6], int(r[7]),
                       None if r[8] is None else int(r[8]),
                       None if r[9] is None else int(r[9]), r[10], r[11])
