"""Bearer tokens for enterprise systems (an ERP, a label printer): what they are and how
their text is made and checked.

A token acts for one principal with a narrower :class:`~registry.access.principals.Scope`
(``resolve`` or ``write``), optionally only under one prefix, until it expires or is
revoked. Its text is ``idn1.<token id>.<secret>``: the id is public (it names the token
in lists, logs and revocations), the secret is 256 random bits stored only as its
SHA-256 (a slow hash buys nothing against a random secret of that size, and every
request with a token pays the check).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from registry.access.principals import Principal, Scope
from registry.errors import InvalidArgument, Unauthenticated

PREFIX = "idn1"
_ID_BYTES = 8
_SECRET_BYTES = 32
_TEXT = re.compile(r"idn1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
TOKEN_SCOPES = {"resolve": Scope.RESOLVE, "write": Scope.WRITE}
MAX_DESCRIPTION_CHARS = 200


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token as the store keeps it (never the secret)."""

    token_id: str
    secret_hash: str
    principal: str  # the identity as registered, e.g. 300:88.118.8/ERP
    principal_key: str
    scope: Scope
    prefix_key: str | None
    prefix_text: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    created_by: str
    description: str = ""

    def check(self, secret: str, now: float) -> Principal:
        """The principal this token acts for, or Unauthenticated naming why not."""
        if not hmac.compare_digest(self.secret_hash, hash_token_secret(secret)):
            raise Unauthenticated("bearer token is not valid")
        if self.revoked_at is not None:
            raise Unauthenticated(f"bearer token {self.token_id} was revoked")
        if self.expires_at is not None and now >= self.expires_at:
            raise Unauthenticated(f"bearer token {self.token_id} has expired")
        return Principal(self.principal, self.principal_key, self.scope, self.prefix_key,
                         self.token_id)


def new_token() -> tuple[str, str, str]:
    """``(token id, secret, full token text)`` for a new token."""
    token_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return token_id, secret, f"{PREFIX}.{token_id}.{secret}"


def split_token(text: str) -> tuple[str, str]:
    """``(token id, secret)`` of a token's text; Unauthenticated when it is not one."""
    match = _TEXT.fullmatch(text.strip())
    if match is None:
        raise Unauthenticated("bearer token is malformed (expected idn1.<id>.<secret>)")
    return match.group(1), match.group(2)


def hash_token_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


def parse_scope(text: str) -> Scope:
    scope = TOKEN_SCOPES.get(text.strip().lower())
    if scope is None:
        raise InvalidArgument(f"token scope must be one of {', '.join(TOKEN_SCOPES)}, "
                              f"got {text!r}")
    return scope


__all__ = ["StoredToken", "hash_token_secret", "new_token", "parse_scope", "split_token"]
